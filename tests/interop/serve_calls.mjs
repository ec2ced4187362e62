// serve_calls.mjs: make N concurrent tools/call of one tool on `weft serve`
// with the official MCP SDK client, over Streamable HTTP.
//   node serve_calls.mjs URL TOOL ARGS_JSON N [READY_FILE]
// Prints one line per call as it is answered: "ok RUN STATUS TEXT" or
// "error MESSAGE"; writes READY_FILE (if given) once the calls are sent.
// Exits 0 if every call succeeded (an answer without isError).
import { writeFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, tool, argsJson, nText, ready] = process.argv.slice(2);
const n = Number(nText);
const client = new Client({ name: "weft-serve-calls", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
let failed = 0;
// No client-side timeout worth the name: the test bounds the wait itself.
const opts = { timeout: 600000, resetTimeoutOnProgress: true };
const calls = [];
for (let i = 0; i < n; i++)
  calls.push(client.callTool({ name: tool, arguments: JSON.parse(argsJson) },
    CallToolResultSchema, opts).then((r) => {
      const meta = r._meta || {};
      const text = (r.content || []).map((c) => c.text || "").join(" ");
      if (r.isError) failed++;
      console.log(`${r.isError ? "error" : "ok"} ${meta["weft/run"]} ${meta["weft/status"]} ${text}`);
    }, (e) => { failed++; console.log(`error ${e.message}`); }));
if (ready) writeFileSync(ready, "sent\n");
await Promise.all(calls);
await client.close();
process.exit(failed ? 1 : 0);
