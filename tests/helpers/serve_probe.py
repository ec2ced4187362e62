#!/usr/bin/env python3
# serve_probe.py: raw TCP clients that misbehave, for t_serve_limits.sh.
#
#   hold HOST PORT N READY RELEASE   open N connections, write READY, wait
#                                    for a line on the fifo RELEASE, close
#   closed HOST PORT MODE BOUND      behave as MODE, wait (at most BOUND s)
#                                    for the server to close; exit 0 if it
#                                    did.  MODE: idle (send nothing),
#                                    keepalive (one request, then nothing),
#                                    header (headers one byte at a time),
#                                    body (headers, then the body one byte
#                                    at a time), read (print what arrives),
#                                    unread (send the request in file
#                                    $PROBE_REQUEST, never read: the
#                                    server's end of the connection leaves
#                                    ESTABLISHED in /proc/net/tcp, since
#                                    its FIN waits behind the unread data)
#   noread HOST PORT N REQUEST       open N connections, send the bytes of
#                                    file REQUEST on each, wait until each
#                                    has its answer's first byte (peeked,
#                                    never read), print "ready", hold until
#                                    stdin closes
# Every wait is bounded; the bounds are safety nets, not the measure.
import os
import select
import socket
import sys
import time


def connect(host, port):
    s = socket.create_connection((host, int(port)), timeout=60)
    s.settimeout(None)
    return s


def hold(host, port, n, ready, release):
    conns = [connect(host, port) for _ in range(int(n))]
    with open(ready + ".tmp", "w") as f:
        f.write("%d\n" % len(conns))
    os.rename(ready + ".tmp", ready)
    with open(release) as f:
        f.readline()
    for c in conns:
        c.close()


def server_end_open(s):
    """Is the server's end of s still ESTABLISHED (/proc/net/tcp)?"""
    ours = ":%04X" % s.getsockname()[1]
    theirs = ":%04X" % s.getpeername()[1]
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (fields[1].endswith(theirs) and fields[2].endswith(ours)
                    and fields[3] == "01"):
                return True
    return False


def server_closed(s, wait):
    """True if the server closed s within wait seconds (data is read)."""
    if mode == "unread":
        time.sleep(wait)
        return not server_end_open(s)
    r, _, _ = select.select([s], [], [], wait)
    if not r:
        return False
    try:
        data = s.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return True
    if mode == "read" and data:
        sys.stdout.write(data.decode("latin-1"))
        sys.stdout.flush()
    return not data


def closed(host, port, how, bound):
    global mode
    mode = how
    s = connect(host, port)
    start = time.monotonic()
    deadline = start + float(bound)
    sent = 0
    trickle = b""
    if how == "keepalive":
        s.sendall(b"GET /other HTTP/1.1\r\nHost: localhost\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(65536)
        head, _, body = got.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(body) < length:
            body += s.recv(65536)
    elif how == "header":
        s.sendall(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        trickle = b"a"
    elif how == "unread":
        with open(os.environ["PROBE_REQUEST"], "rb") as f:
            s.sendall(f.read())
    elif how == "body":
        s.sendall(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Content-Length: 100000\r\n\r\n")
        trickle = b" "
    while time.monotonic() < deadline:
        if trickle:
            try:
                s.send(trickle)
                sent += 1
            except (ConnectionResetError, BrokenPipeError):
                break
        if server_closed(s, 0.1 if trickle else 1.0):
            break
    else:
        print("still open after %.1f s (%d bytes sent one by one)" %
              (time.monotonic() - start, sent))
        sys.exit(1)
    print("closed by the server after %.1f s (%d bytes sent one by one)" %
          (time.monotonic() - start, sent))


def noread(host, port, n, request):
    with open(request, "rb") as f:
        req = f.read()
    conns = []
    for _ in range(int(n)):
        c = connect(host, port)
        c.sendall(req)
        conns.append(c)
    for c in conns:
        r, _, _ = select.select([c], [], [], 120)
        if not r or not c.recv(1, socket.MSG_PEEK):
            print("no answer")
            sys.exit(1)
    print("ready", flush=True)
    sys.stdin.read()
    for c in conns:
        c.close()


mode = None
cmd = sys.argv[1]
if cmd == "hold":
    hold(*sys.argv[2:7])
elif cmd == "closed":
    closed(*sys.argv[2:6])
elif cmd == "noread":
    noread(*sys.argv[2:6])
else:
    sys.exit("usage: serve_probe.py hold|closed|noread ...")
