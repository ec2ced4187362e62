// progress_client.mjs: call a served workflow with the official TypeScript
// SDK client and watch its progress notifications as they come.
//   node progress_client.mjs URL TOOL SEEN_FILE
// Each notification's message is appended to SEEN_FILE as a line when it
// arrives (the test waits for a line there, then lets the tool finish);
// at the end prints {"result": ..., "progress": [...]} as one JSON line.
import { appendFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, tool, seen] = process.argv.slice(2);
const client = new Client({ name: "weft-progress", version: "1.0.0" }, { capabilities: {} });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const progress = [];
const r = await client.callTool({ name: tool, arguments: {} }, CallToolResultSchema, {
  timeout: 600000, resetTimeoutOnProgress: true,
  onprogress: (p) => {
    progress.push(p);
    appendFileSync(seen, `${p.message}\n`);
  },
});
console.log(JSON.stringify({ result: r, progress }));
await client.close();
