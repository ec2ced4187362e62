// a2a_sdk_client.mjs: drive `weft serve`'s A2A agents with the official
// SDK client (@a2a-js/sdk, ClientFactory + JsonRpcTransportFactory with
// legacyCompat), in protocol VERSION 1.0 or 0.3.  Used by t_a2a_serve.sh:
//   node a2a_sdk_client.mjs BASE_URL TOKEN VERSION
// BASE_URL is http://HOST:PORT; the agents are "researcher" (fast) and
// "slow" (waits on a file, to cancel).  Prints "ok - ..." per check;
// exits 1 at the first failure.
import {
  ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory,
} from "@a2a-js/sdk/client";

const [base, token, version] = process.argv.slice(2);
function fail(what, detail) {
  console.error(`FAIL: ${what}` + (detail === undefined ? "" : `: ${
    typeof detail === "string" ? detail : JSON.stringify(detail, (k, v) => typeof v === "bigint" ? String(v) : v)}`));
  process.exit(1);
}
function ok(what) { console.log(`ok - ${what} (${version})`); }
function check(cond, what, detail) { if (!cond) fail(what, detail); ok(what); }

const authed = (tok) => (url, init = {}) => {
  const h = new Headers(init.headers);
  if (tok) h.set("Authorization", `Bearer ${tok}`);
  return fetch(url, { ...init, headers: h });
};
async function client(agent, tok) {
  const f = authed(tok);
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl: f, legacyCompat: { enabled: true } })],
  }));
  // The card as this version asks for it: v1.0 sends A2A-Version: 1.0.
  const res = await f(`${base}/a2a/${agent}/.well-known/agent-card.json`,
    { headers: { "A2A-Version": "1.0" } });
  if (res.status !== 200) throw new Error(`card: HTTP ${res.status}`);
  const card = await res.json();
  // Offer the interface of this version only, so the SDK speaks it.
  card.supportedInterfaces = card.supportedInterfaces.filter((i) => i.protocolVersion === version);
  return factory.createFromAgentCard(card);
}
const text = (s) => ({ content: { $case: "text", value: s } });
const data = (v) => ({ content: { $case: "data", value: v } });
let n = 0;
const msg = (parts, contextId = "") => ({ message: { messageId: `sdk-${version}-${++n}`, role: 1, parts,
  contextId, taskId: "", metadata: undefined, extensions: [], referenceTaskIds: [] },
  configuration: undefined, metadata: undefined });
const taskOf = (r) => (r?.payload?.$case === "task" ? r.payload.value : r?.task ?? r);
const partText = (a) => a?.parts?.map((p) => p.content?.value).join("");
const STATE = { COMPLETED: 3, FAILED: 4, CANCELED: 5, WORKING: 2 };

const c = await client("researcher", token);
check(c.protocolVersion.startsWith(version === "1.0" ? "1." : "0.3"), "the client speaks the version", c.protocolVersion);

// send: text fills the one string field of the input schema.
let r = await c.sendMessage(msg([text("bees")], "conv-1"));
let t = taskOf(r);
check(t.status.state === STATE.COMPLETED, "SendMessage completes", t);
check(partText(t.artifacts[0]) === "notes on bees", "the output is the artifact", t.artifacts);
check(t.contextId === "conv-1", "contextId kept");
const id1 = t.id;

// get (with historyLength).
t = await c.getTask({ id: id1, historyLength: 1, tenant: "" });
check(t.id === id1 && t.status.state === STATE.COMPLETED, "GetTask", t);

// stream: status updates, the artifact, the final status.
const seen = [];
for await (const ev of c.sendMessageStream(msg([data({ topic: "ants" })]))) seen.push(ev);
const kinds = seen.map((e) => e.payload?.$case ?? e.kind);
check(kinds.includes("statusUpdate") || kinds.includes("status-update"), "the stream has status updates", kinds);
const art = seen.find((e) => e.payload?.$case === "artifactUpdate");
check(art && partText(art.payload.value.artifact) === "notes on ants", "the stream carries the artifact", seen);
const last = seen[seen.length - 1];
check(last.payload?.value?.status?.state === STATE.COMPLETED, "the stream ends completed", last);

// list (v1.0 only: JSON-RPC ListTasks).
if (version === "1.0") {
  const l = await c.listTasks({ tenant: "", contextId: "conv-1", status: 0, pageSize: 10, pageToken: "",
    historyLength: 0, statusTimestampAfter: undefined, includeArtifacts: false });
  check(l.tasks.length === 1 && l.tasks[0].id === id1, "ListTasks by contextId", l);
}

// invalid input: a data part that does not match the input schema.
try {
  await c.sendMessage(msg([data({ topic: 7 })]));
  fail("an input that does not match the schema must be refused");
} catch (e) {
  check(/input_schema/.test(String(e.message)), "invalid input refused, naming the schema", String(e.message));
}

// cancel: a slow task, returned at once, then cancelled; resubscribe first.
const s = await client("slow", token);
// (The SDK's shape; its v0.3 transport sends it as blocking: false.)
r = await s.sendMessage({ ...msg([text("wait")]), configuration:
  { acceptedOutputModes: [], taskPushNotificationConfig: undefined, historyLength: undefined, returnImmediately: true } });
t = taskOf(r);
check(t.status.state === STATE.WORKING || t.status.state === 1, "a non-blocking send returns the running task", t);
const sub = s.resubscribeTask({ id: t.id, tenant: "" });
const first = await sub.next();
check(!first.done, "SubscribeToTask streams the running task", first);
const cancelled = await s.cancelTask({ id: t.id, tenant: "", metadata: undefined });
check(cancelled.status.state === STATE.CANCELED, "CancelTask", cancelled);
let end;
for (let e = await sub.next(); !e.done; e = await sub.next()) end = e.value;
check(end?.payload?.value?.status?.state === STATE.CANCELED, "the subscription ends canceled", end);
t = await s.getTask({ id: t.id, tenant: "" });
check(t.status.state === STATE.CANCELED, "GetTask after cancel", t);

// another token's client sees none of these tasks; a wrong token is refused.
if (token) {
  try {
    const bad = await client("researcher", "not-the-token-at-all-0000");
    await bad.getTask({ id: id1, tenant: "" });
    fail("a wrong token must be refused");
  } catch (e) {
    check(/401/.test(String(e.message)), "a wrong token is refused (401)", String(e.message));
  }
}
process.exit(0);
