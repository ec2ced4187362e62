// a2a_approval_client.mjs: a workflow that waits for w.approval, served by
// `weft serve` as an A2A agent, driven by the official SDK client
// (@a2a-js/sdk) in protocol VERSION 1.0 or 0.3.  Used by t_a2a_serve.sh:
//   node a2a_approval_client.mjs BASE_URL TOKEN VERSION
// The agent "signoff" asks "Deploy SERVICE?".  The task must stop at
// input-required with that question; a message on the task (taskId)
// answers: a data part {approved, comment} approves, the text "reject"
// rejects, a message that says neither is refused.  Prints "ok - ...".
import {
  ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory,
} from "@a2a-js/sdk/client";

const [base, token, version] = process.argv.slice(2);
function fail(what, detail) {
  console.error(`FAIL: ${what}` + (detail === undefined ? "" : `: ${
    typeof detail === "string" ? detail : JSON.stringify(detail, (k, v) => typeof v === "bigint" ? String(v) : v)}`));
  process.exit(1);
}
// A safety net, never an ordering: a send that never answers fails.
setTimeout(() => fail("no answer within the safety bound"),
  1000 * Number(process.env.A2A_TEST_BOUND_S || 120)).unref();
function check(cond, what, detail) { if (!cond) fail(what, detail); console.log(`ok - ${what} (${version})`); }

const f = (url, init = {}) => {
  const h = new Headers(init.headers);
  h.set("Authorization", `Bearer ${token}`);
  return fetch(url, { ...init, headers: h });
};
const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
  transports: [new JsonRpcTransportFactory({ fetchImpl: f, legacyCompat: { enabled: true } })],
}));
const res = await f(`${base}/a2a/signoff/.well-known/agent-card.json`, { headers: { "A2A-Version": "1.0" } });
const card = await res.json();
card.supportedInterfaces = card.supportedInterfaces.filter((i) => i.protocolVersion === version);
const c = await factory.createFromAgentCard(card);

const STATE = { COMPLETED: 3, INPUT_REQUIRED: 6 };
const text = (s) => ({ content: { $case: "text", value: s } });
const data = (v) => ({ content: { $case: "data", value: v } });
let n = 0;
const msg = (parts, task) => ({ message: { messageId: `appr-${version}-${++n}`, role: 1, parts,
  contextId: task ? task.contextId : "", taskId: task ? task.id : "", metadata: undefined,
  extensions: [], referenceTaskIds: [] }, configuration: undefined, metadata: undefined });
const taskOf = (r) => (r?.payload?.$case === "task" ? r.payload.value : r?.task ?? r);
const said = (t) => t.status?.message?.parts?.map((p) => p.content?.value).join("");
const out = (t) => t.artifacts?.[0]?.parts?.map((p) => p.content?.value).join("");

// 1. Approved with a data part and a comment.
let t = taskOf(await c.sendMessage(msg([text(`billing-${version}`)])));
check(t.status.state === STATE.INPUT_REQUIRED, "the task waits for the approval: input-required", t);
check(said(t) === `Deploy billing-${version}?`, "its status message is the approval's question", t.status);
const again = await c.getTask({ id: t.id, tenant: "" });
check(again.status.state === STATE.INPUT_REQUIRED, "GetTask says input-required too", again.status);
try {
  await c.sendMessage(msg([text("maybe")], t));
  fail("a message that neither approves nor rejects must be refused");
} catch (e) {
  check(/approve.*reject/.test(String(e.message)), "a message that says neither is refused", String(e.message));
}
let r = taskOf(await c.sendMessage(msg([data({ approved: true, comment: "go ahead" })], t)));
check(r.id === t.id && r.status.state === STATE.COMPLETED, "approved: the same task goes on and completes", r);
check(out(r) === `deployed billing-${version} (go ahead)`, "the run got the approval and its comment", r.artifacts);

// 2. Rejected with the text "reject".
t = taskOf(await c.sendMessage(msg([text(`search-${version}`)])));
check(t.status.state === STATE.INPUT_REQUIRED, "a second task waits", t);
r = taskOf(await c.sendMessage(msg([text("reject: not today")], t)));
check(r.status.state === STATE.COMPLETED && out(r) === "not deployed: not today",
  "rejected by text: the run goes on with the rejection", r);
process.exit(0);
