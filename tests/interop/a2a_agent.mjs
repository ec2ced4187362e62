// a2a_agent.mjs: remote A2A agents built with the official SDK's server
// classes (@a2a-js/sdk, express), for weft's A2A client (t_a2a_client.sh).
//   node a2a_agent.mjs PORTFILE LOGFILE [--v03] [--token T]
// Listens on 127.0.0.1:0 and writes "PORT" to PORTFILE once listening.
// Every message received is logged to LOGFILE as one JSON line
// {messageId, text, version}.  What the agent does is chosen by the
// message's first word:
//   echo ...     completes with an artifact "echo: <text>"
//   stream ...   working, two artifact chunks, completed (for streaming)
//   data ...     completes with a data artifact {"n": 42}
//   file ...     completes with text, a file's bytes and a file's url
//   ask ...      input-required: "Which city?"
//   fail ...     failed: "the agent broke"
//   slow ...     working until cancelled (logs "cancel <taskId>")
//   hold FILE    working until FILE exists, then completes
//   quiet FILE   answers nothing (no task yet) until FILE exists, then
//                completes
//   later FILE   answers at once with a task in state working (the
//                stream, if any, ends); the task completes in the task
//                store, with an artifact "later: done", once FILE exists
// Every JSON-RPC request on /rpc is logged too: {rpc: method, id:
// params.id, traceparent}.
// /redirect/* answers 307 to http://localhost:PORT/ (another host name).
import express from "express";
import fs from "node:fs";
import {
  DefaultRequestHandler, InMemoryTaskStore, AgentEvent,
} from "@a2a-js/sdk/server";
import { jsonRpcHandler, agentCardHandler, UserBuilder } from "@a2a-js/sdk/server/express";

const [portFile, logFile, ...opts] = process.argv.slice(2);
const v03 = opts.includes("--v03");
const ti = opts.indexOf("--token");
const token = ti >= 0 ? opts[ti + 1] : null;
const TS = { SUBMITTED: 1, WORKING: 2, COMPLETED: 3, FAILED: 4, CANCELED: 5, INPUT_REQUIRED: 6 };
const text = (s) => ({ content: { $case: "text", value: s } });
const agentMsg = (s, ctx, task) => ({ messageId: "m-" + Math.random().toString(16).slice(2),
  contextId: ctx.contextId, taskId: task, role: 2, parts: [text(s)], metadata: undefined,
  extensions: [], referenceTaskIds: [] });
const log = (o) => fs.appendFileSync(logFile, JSON.stringify(o) + "\n");
const cancelled = new Set();
const store = new InMemoryTaskStore();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function status(ctx, state, msg) {
  return AgentEvent.statusUpdate({ taskId: ctx.taskId, contextId: ctx.contextId,
    status: { state, message: msg ? agentMsg(msg, ctx, ctx.taskId) : undefined,
              timestamp: new Date().toISOString() }, metadata: undefined });
}
function artifact(ctx, id, part, append) {
  return AgentEvent.artifactUpdate({ taskId: ctx.taskId, contextId: ctx.contextId,
    artifact: { artifactId: id, name: id, description: "", parts: [part], metadata: undefined,
                extensions: [] }, append: !!append, lastChunk: true, metadata: undefined });
}

const executor = {
  async execute(ctx, bus) {
    const m = ctx.userMessage;
    const words = m.parts.filter((p) => p.content?.$case === "text").map((p) => p.content.value).join(" ");
    const datas = m.parts.filter((p) => p.content?.$case === "data").map((p) => p.content.value);
    log({ messageId: m.messageId, text: words, data: datas, contextId: ctx.contextId });
    const verb = words.split(/\s+/)[0];
    if (verb === "later") {
      // Answered now with a working task; completed later, out of band.
      const file = words.split(/\s+/)[1];
      bus.publish(AgentEvent.task({ id: ctx.taskId, contextId: ctx.contextId,
        status: { state: TS.WORKING, message: undefined, timestamp: new Date().toISOString() },
        artifacts: [], history: [m], metadata: undefined }));
      (async () => {
        while (!fs.existsSync(file)) await sleep(50);
        const t = await store.load(ctx.taskId, ctx.context);
        t.status = { state: TS.COMPLETED, message: undefined, timestamp: new Date().toISOString() };
        t.artifacts = [{ artifactId: "result", name: "result", description: "",
          parts: [text("later: done")], metadata: undefined, extensions: [] }];
        await store.save(t, ctx.context);
      })();
      return;	// the SDK ends the bus: the answer is the working task
    }
    if (verb === "quiet") {
      const file = words.split(/\s+/)[1];
      while (!fs.existsSync(file)) await sleep(50);
    }
    bus.publish(AgentEvent.task({ id: ctx.taskId, contextId: ctx.contextId,
      status: { state: TS.SUBMITTED, message: undefined, timestamp: undefined },
      artifacts: [], history: [m], metadata: undefined }));
    bus.publish(status(ctx, TS.WORKING, "on it"));
    if (verb === "ask") {
      bus.publish(status(ctx, TS.INPUT_REQUIRED, "Which city?"));
    } else if (verb === "fail") {
      bus.publish(status(ctx, TS.FAILED, "the agent broke"));
    } else if (verb === "quiet") {
      bus.publish(artifact(ctx, "result", text("held: done")));
      bus.publish(status(ctx, TS.COMPLETED));
    } else if (verb === "slow" || verb === "hold") {
      const file = words.split(/\s+/)[1];
      while (!cancelled.has(ctx.taskId) && !(verb === "hold" && fs.existsSync(file)))
        await new Promise((r) => setTimeout(r, 50));
      if (cancelled.has(ctx.taskId)) {
        bus.publish(status(ctx, TS.CANCELED, "cancelled as asked"));
      } else {
        bus.publish(artifact(ctx, "result", text("held: done")));
        bus.publish(status(ctx, TS.COMPLETED));
      }
    } else if (verb === "file") {
      bus.publish(AgentEvent.artifactUpdate({ taskId: ctx.taskId, contextId: ctx.contextId,
        artifact: { artifactId: "files", name: "files", description: "", metadata: undefined, extensions: [],
          parts: [text("two files"),
            { content: { $case: "raw", value: Buffer.from("file body\n") }, filename: "notes.txt",
              mediaType: "text/plain", metadata: undefined },
            { content: { $case: "url", value: "https://example.com/r.pdf" }, filename: "r.pdf",
              mediaType: "application/pdf", metadata: undefined }] },
        append: false, lastChunk: true, metadata: undefined }));
      bus.publish(status(ctx, TS.COMPLETED));
    } else if (verb === "data") {
      bus.publish(artifact(ctx, "result", { content: { $case: "data", value: { n: 42 } } }));
      bus.publish(status(ctx, TS.COMPLETED));
    } else if (verb === "stream") {
      bus.publish(artifact(ctx, "result", text("part one")));
      bus.publish(artifact(ctx, "result", text("part two"), true));
      bus.publish(status(ctx, TS.COMPLETED, "done"));
    } else {
      bus.publish(artifact(ctx, "result", text("echo: " + words)));
      bus.publish(status(ctx, TS.COMPLETED));
    }
    bus.finished();
  },
  async cancelTask(taskId, bus) {
    log({ cancel: taskId });
    cancelled.add(taskId);
  },
};

const app = express();
const server = app.listen(0, "127.0.0.1", () => {
  const port = server.address().port;
  const base = `http://127.0.0.1:${port}`;
  const card = {
    name: v03 ? "legacy agent" : "test agent", description: "An SDK agent for weft's tests",
    version: "1.0.0",
    supportedInterfaces: v03 ? [{ url: base + "/rpc", protocolBinding: "JSONRPC", tenant: "", protocolVersion: "0.3" }]
      : [{ url: base + "/rpc", protocolBinding: "JSONRPC", tenant: "", protocolVersion: "1.0" },
         { url: base + "/rpc", protocolBinding: "JSONRPC", tenant: "", protocolVersion: "0.3" }],
    provider: undefined, capabilities: { streaming: !opts.includes("--no-stream"), pushNotifications: false, extensions: [] },
    securitySchemes: {}, securityRequirements: [], defaultInputModes: ["text/plain"],
    defaultOutputModes: ["text/plain", "application/json"],
    skills: [{ id: "echo", name: "echo", description: "Echoes", tags: ["test"], examples: [],
               inputModes: [], outputModes: [], securityRequirements: [] }],
    signatures: [],
  };
  const handler = new DefaultRequestHandler(card, store, executor);
  app.use((req, res, next) => {
    if (req.path.startsWith("/redirect"))
      return res.redirect(307, `http://localhost:${port}` + req.path.slice(9));
    if (req.path.startsWith("/same")) return res.redirect(307, req.path.slice(5) || "/");
    if (token && req.path.startsWith("/rpc") && req.get("Authorization") !== `Bearer ${token}`)
      return res.status(401).json({ error: "bad token" });
    log({ http: req.method + " " + req.path, auth: req.get("Authorization") ? "yes" : "no",
          version: req.get("A2A-Version") || "", traceparent: req.get("traceparent") || "" });
    next();
  });
  app.use("/.well-known/agent-card.json", agentCardHandler({ agentCardProvider: handler,
    legacyCompat: { enabled: true } }));
  app.use("/rpc", express.json(), (req, res, next) => {
    log({ rpc: req.body?.method, id: req.body?.params?.id, traceparent: req.get("traceparent") || "" });
    next();
  }, jsonRpcHandler({ requestHandler: handler,
    userBuilder: UserBuilder.noAuthentication, legacyCompat: { enabled: true } }));
  fs.writeFileSync(portFile + ".tmp", String(port));
  fs.renameSync(portFile + ".tmp", portFile);
});
process.on("SIGTERM", () => process.exit(0));
