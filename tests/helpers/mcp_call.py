#!/usr/bin/env python3
# mcp_call.py: a small MCP client over Streamable HTTP (http.client only),
# for the tests and benchmarks of `weft serve`.
#
#   call URL TOOL ARGS_JSON         initialize, call TOOL once, print the
#                                   tools/call result as one JSON line
#   bench URL TOOL ARGS_JSON C N    N calls from C threads (one session
#                                   each); print "p50_ms p99_ms calls_s
#                                   errors"
#   flood URL TOOL ARGS_JSON N READY  start N calls on N connections,
#                                   write READY once all are sent, then
#                                   wait for their answers (exit 0)
# $WEFT_TOKEN, when set, is sent as the bearer token.  Every socket has a
# generous timeout (a safety net, not a measure).
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

TIMEOUT = 600


class Session:
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = u.hostname, u.port, u.path
        self.conn = http.client.HTTPConnection(self.host, self.port,
                                               timeout=TIMEOUT)
        self.sid = None
        self.next_id = 1

    def headers(self):
        h = {"Content-Type": "application/json",
             "Accept": "application/json, text/event-stream",
             "MCP-Protocol-Version": "2025-11-25"}
        if self.sid:
            h["Mcp-Session-Id"] = self.sid
        tok = os.environ.get("WEFT_TOKEN")
        if tok:
            h["Authorization"] = "Bearer " + tok
        return h

    def post(self, msg):
        """Send msg; return the JSON-RPC response to it (or None)."""
        self.conn.request("POST", self.path, json.dumps(msg), self.headers())
        r = self.conn.getresponse()
        sid = r.getheader("Mcp-Session-Id")
        if sid:
            self.sid = sid
        ctype = r.getheader("Content-Type") or ""
        if r.status == 202:
            r.read()
            return None
        if r.status != 200:
            raise RuntimeError("HTTP %d: %s" % (r.status, r.read()[:300]))
        if ctype.startswith("application/json"):
            return json.loads(r.read())
        # text/event-stream: read events until the response to msg.
        data = []
        while True:
            line = r.readline()
            if not line:
                raise RuntimeError("stream ended without an answer")
            line = line.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data.append(line[5:].lstrip())
            elif line == b"" and data:
                m = json.loads(b"\n".join(data))
                data = []
                if "id" in m and m.get("id") == msg.get("id") and \
                        ("result" in m or "error" in m):
                    # drain the rest of the stream
                    r.read()
                    return m

    def request(self, method, params):
        m = {"jsonrpc": "2.0", "id": self.next_id, "method": method,
             "params": params}
        self.next_id += 1
        return self.post(m)

    def open(self):
        self.request("initialize", {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "mcp_call.py", "version": "1"}})
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    def call(self, tool, args):
        a = self.request("tools/call", {"name": tool, "arguments": args})
        if "error" in a:
            raise RuntimeError("error: %s" % json.dumps(a["error"]))
        return a["result"]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def bench(url, tool, args, conc, n):
    lat, errs, lock = [], [0], threading.Lock()
    left = [n]

    def worker():
        s = Session(url).open()
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            t0 = time.monotonic()
            try:
                r = s.call(tool, args)
                bad = r.get("isError", False)
            except Exception:
                bad = True
                s = Session(url).open()
            dt = time.monotonic() - t0
            with lock:
                lat.append(dt)
                errs[0] += 1 if bad else 0
    ts = [threading.Thread(target=worker) for _ in range(conc)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    print("%.1f %.1f %.1f %d" % (pct(lat, 50) * 1000, pct(lat, 99) * 1000,
                                 n / wall, errs[0]))


def flood(url, tool, args, n, ready):
    # Raw sockets: one request each, answers read at the end.
    sessions = [Session(url).open() for _ in range(1)]
    sid = sessions[0].sid
    conns = []
    for i in range(n):
        c = http.client.HTTPConnection(sessions[0].host, sessions[0].port,
                                       timeout=TIMEOUT)
        h = sessions[0].headers()
        h["Mcp-Session-Id"] = sid
        c.request("POST", sessions[0].path, json.dumps({
            "jsonrpc": "2.0", "id": i + 10, "method": "tools/call",
            "params": {"name": tool, "arguments": args}}), h)
        conns.append(c)
    with open(ready + ".tmp", "w") as f:
        f.write("%d\n" % n)
    os.rename(ready + ".tmp", ready)
    for c in conns:
        r = c.getresponse()
        r.read()


def main():
    cmd = sys.argv[1]
    if cmd == "call":
        s = Session(sys.argv[2]).open()
        print(json.dumps(s.call(sys.argv[3], json.loads(sys.argv[4]))))
    elif cmd == "bench":
        bench(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]),
              int(sys.argv[5]), int(sys.argv[6]))
    elif cmd == "flood":
        flood(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]),
              int(sys.argv[5]), sys.argv[6])
    else:
        sys.exit("usage: mcp_call.py call|bench|flood ...")


if __name__ == "__main__":
    main()
