// sdk_client.mjs: drive weft's MCP server with the official TypeScript SDK
// client (@modelcontextprotocol/sdk).  Used by t_mcp_stdio.sh and
// t_mcp_http.sh:
//   node sdk_client.mjs stdio WEFT ARGS...     (spawns `WEFT ARGS...`)
//   node sdk_client.mjs http URL [TOKEN]
// Prints "ok - ..." per check; exits 1 at the first failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";

const [mode, ...rest] = process.argv.slice(2);

function fail(what, detail) {
  console.error(`FAIL: ${what}` + (detail === undefined ? "" : `: ${JSON.stringify(detail)}`));
  process.exit(1);
}
function ok(what) { console.log(`ok - ${what}`); }
function check(cond, what, detail) { if (!cond) fail(what, detail); ok(what); }

let transport;
if (mode === "stdio") {
  transport = new StdioClientTransport({ command: rest[0], args: rest.slice(1), stderr: "inherit" });
} else if (mode === "http") {
  const opts = rest[1] ? { requestInit: { headers: { Authorization: `Bearer ${rest[1]}` } } } : {};
  transport = new StreamableHTTPClientTransport(new URL(rest[0]), opts);
} else {
  fail("usage: sdk_client.mjs stdio CMD ARGS... | http URL [TOKEN]");
}

const client = new Client({ name: "weft-interop", version: "1.0.0" },
  { capabilities: { sampling: {}, elicitation: {} } });
const asked = [];
const { CreateMessageRequestSchema, ElicitRequestSchema } = await import("@modelcontextprotocol/sdk/types.js");
client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
  asked.push(req.params);
  return { role: "assistant", model: "interop-model", stopReason: "endTurn",
    content: { type: "text", text: `echo: ${req.params.messages[0].content.text}` } };
});
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  asked.push(req.params);
  return { action: "accept", content: { username: "ada", email: "ada@example.com" } };
});
await client.connect(transport);
const info = client.getServerVersion();
check(info && info.name === "weft", "initialize: server is weft", info);
const caps = client.getServerCapabilities();
check(caps.tools && caps.resources && caps.prompts && caps.logging, "capabilities: tools, resources, prompts, logging", caps);
if (mode === "http") check(typeof transport.sessionId === "string" && transport.sessionId.length >= 32, "session id given", transport.sessionId);

const tools = (await client.listTools()).tools;
const names = tools.map((t) => t.name);
check(names.includes("test_simple_text") && names.includes("slow"), "tools/list names the workflows", names);
const slow = tools.find((t) => t.name === "slow");
check(slow.description === "Sleeps on the test server" && slow.inputSchema.required[0] === "label",
  "a tool's description and inputSchema come from w.workflow{}", slow);

const simple = await client.callTool({ name: "test_simple_text", arguments: {} });
check(simple.content[0].type === "text" && simple.content[0].text === "This is a simple text response for testing.",
  "tools/call answers with the run's output", simple);
const runId = simple._meta && simple._meta["weft/run"];
check(/^[0-9a-f]{16}$/.test(runId || ""), "the answer names its run", simple._meta);

const progress = [];
const pr = await client.callTool({ name: "test_tool_with_progress", arguments: {} }, CallToolResultSchema,
  { onprogress: (p) => progress.push(p) });
check(progress.length >= 3, "progress notifications follow the run's steps", progress);
check(progress.every((p, i) => i === 0 || p.progress > progress[i - 1].progress), "progress increases", progress);
check(pr.content[0].text === "Progress test completed", "the progress tool answers", pr);

const err = await client.callTool({ name: "test_error_handling", arguments: {} });
check(err.isError === true && /intentionally returns an error/.test(err.content[0].text),
  "a failed run is isError with its message", err);

const bad = await client.callTool({ name: "slow", arguments: { label: 7 } });
check(bad.isError === true && /invalid arguments.*\/label/.test(bad.content[0].text),
  "arguments are checked against input_schema", bad);

let unknown;
try { unknown = await client.callTool({ name: "no_such_tool", arguments: {} }); } catch (e) { unknown = e; }
check(unknown instanceof Error ? /no_such_tool/.test(unknown.message) : unknown.isError === true,
  "an unknown tool is refused", String(unknown));

const [a, b] = await Promise.all([
  client.callTool({ name: "test_simple_text", arguments: {} }),
  client.callTool({ name: "test_image_content", arguments: {} }),
]);
check(a.content[0].type === "text" && b.content[0].type === "image" && b.content[0].mimeType === "image/png",
  "two calls at once both answer", [a, b]);

const traj = await client.readResource({ uri: `weft://runs/${runId}` });
const t = JSON.parse(traj.contents[0].text);
check(t.id === runId && t.status === "succeeded" && t.events.some((e) => e.kind === "run.end"),
  "the run's trajectory is a resource", t);
const res = (await client.listResources()).resources.map((r) => r.uri);
check(res.includes("test://static-text") && res.includes(`weft://runs/${runId}`), "resources/list has fixtures and runs", res);
const bin = await client.readResource({ uri: "test://static-binary" });
check(bin.contents[0].blob && bin.contents[0].mimeType === "image/png", "a binary resource", bin);
let missing;
try { missing = await client.readResource({ uri: "weft://runs/0000000000000000" }); } catch (e) { missing = e; }
check(missing instanceof Error && /-32002|not found/.test(missing.message), "an unknown run is resource not found", String(missing));

const prompt = await client.getPrompt({ name: "test_prompt_with_arguments", arguments: { arg1: "x", arg2: "y" } });
check(prompt.messages[0].content.text === "Prompt with arguments: arg1='x', arg2='y'", "prompts/get substitutes arguments", prompt);

const sampled = await client.callTool({ name: "test_sampling", arguments: { prompt: "two words" } });
check(sampled.content[0].text === "LLM response: echo: two words" && asked[0].maxTokens === 100,
  "a run asks the client's model (sampling/createMessage) through w.mcp_client()", [sampled, asked]);
const elicited = await client.callTool({ name: "test_elicitation", arguments: { message: "Who are you?" } });
check(elicited.content[0].text === "User response: action=accept, content={email=ada@example.com, username=ada}" &&
  asked[1].message === "Who are you?" && asked[1].requestedSchema.required.length === 2,
  "a run asks the client's user (elicitation/create)", [elicited, asked]);

await client.setLoggingLevel("debug");
const logs = [];
const { LoggingMessageNotificationSchema } = await import("@modelcontextprotocol/sdk/types.js");
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
await client.callTool({ name: "test_tool_with_logging", arguments: {} });
check(logs.length >= 3 && logs.some((l) => l.data.kind === "run.end"), "log messages follow the run's events", logs);

// Cancellation: abort a call on a tool that sleeps 30 s; the SDK sends
// notifications/cancelled.  The shell script checks the run is recorded
// as cancelled.
const ac = new AbortController();
const started = Date.now();
setTimeout(() => ac.abort("test cancels"), 1500);
let threw = false, answer;
try {
  answer = await client.callTool({ name: "slow", arguments: { label: "cancel-me" } }, CallToolResultSchema,
    { signal: ac.signal });
} catch (e) { threw = true; }
check(threw && Date.now() - started < 20000, "an aborted call ends at once", answer);
await new Promise((r) => setTimeout(r, 1000));
check((await client.ping()) !== undefined, "the server still answers after a cancellation");

await client.close();
ok("closed");
