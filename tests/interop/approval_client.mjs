// approval_client.mjs: call a workflow that waits for approval through
// `weft serve` with the official TypeScript SDK client.
//   node approval_client.mjs URL plain|accept|decline SERVICE
// plain: the client cannot elicit (the approval is answered by weft
// approve while the call waits); accept / decline: it can, and its user
// accepts with {"env":"prod"} or declines.  Prints the elicitation asked
// (if any) and the call's answer as JSON lines.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, mode, service] = process.argv.slice(2);
const caps = mode === "plain" ? {} : { elicitation: {} };
const client = new Client({ name: "weft-approval", version: "1.0.0" }, { capabilities: caps });
if (mode !== "plain") {
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    console.log(JSON.stringify({ elicited: req.params }));
    return mode === "accept" ? { action: "accept", content: { env: "prod" } } : { action: "decline" };
  });
}
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
console.log(JSON.stringify({ calling: service }));
const r = await client.callTool({ name: "release", arguments: { service } }, CallToolResultSchema,
  { timeout: 600000, resetTimeoutOnProgress: true });
console.log(JSON.stringify({ result: r }));
await client.close();
