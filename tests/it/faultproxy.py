#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for the S3 tests (python3 stdlib only).

It listens on 127.0.0.1, forwards every request verbatim (Host header
included, so SigV4 signatures stay valid) to an upstream such as radosgw,
and injects faults on demand:

    tests/it/faultproxy.py --upstream http://127.0.0.1:7480 [--port 0] [--delay-ms MS]

--delay-ms holds every proxied request MS milliseconds before forwarding it
(a stand-in for the network between Lambda and S3, for benchmarks).

prints the port it listens on as the first line of stdout, then serves until
/__faultproxy__/quit, SIGTERM, or its parent process goes away.

Control requests (any method, answered by the proxy itself):
    /__faultproxy__/set?mode=M&count=N[&stall=S][&match=TEXT][&method=METHOD]
        the next N proxied requests (only those whose request target
        contains TEXT, e.g. one key's URL-encoded path, and whose method
        is METHOD, when given) get fault M:
          slowdown  503 with an S3 <Error><Code>SlowDown</Code> body
          internal  500 InternalError
          denied    403 AccessDenied (a permission a person must fix)
          flip      forward; a 2xx GET answer gets x-amz-checksum-crc32 of the
                    true body, then one body byte flipped
          reset     read the request, then reset the connection (RST)
          stall     read the request, then say nothing for S seconds, close
          truncate  forward, relay half of the response body, then reset
          chunked   forward, relay the body chunked (no Content-Length)
          pass      no fault
    /__faultproxy__/stats   "requests=R faults=F" (proxied requests since reset)
    /__faultproxy__/connections  "connections=C" (TCP connections accepted since
                            reset, the one asking included)
    /__faultproxy__/record?on=1  start (on=0: stop) keeping the log below
    /__faultproxy__/log     JSON list, one entry per proxied request: method,
                            target, trace (X-Amzn-Trace-Id or null), signed
                            (SignedHeaders), checksums ({x-amz-checksum-*}),
                            crc32c_ok (a PUT's x-amz-checksum-crc32c against
                            its body, null without one)
    /__faultproxy__/reset   clears the fault, the counters and the log
    /__faultproxy__/quit    stops the proxy
"""
import argparse
import http.client
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
import base64
import json
import re
import zlib


def crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


CRC32C_TABLE = crc32c_table()


def crc32c(data):
    crc, t = 0xFFFFFFFF, CRC32C_TABLE
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


def b64be(value, size=4):
    return base64.b64encode(value.to_bytes(size, "big")).decode()


def describe(method, target, headers, body):
    """What the log keeps of one request."""
    h = {name.lower(): value for name, value in headers}
    m = re.search(r"SignedHeaders=([^,]*)", h.get("authorization", ""))
    sums = {k: v for k, v in h.items() if k.startswith("x-amz-checksum-")}
    ok = None
    if method == "PUT" and "x-amz-checksum-crc32c" in h:
        ok = h["x-amz-checksum-crc32c"] == b64be(crc32c(body or b""))
    return {"method": method, "target": target, "trace": h.get("x-amzn-trace-id"),
            "signed": m.group(1).split(";") if m else [], "checksums": sums, "crc32c_ok": ok}

CONTROL = "/__faultproxy__/"
MAX_LINE = 65536
MODES = ("pass", "slowdown", "internal", "denied", "flip", "reset", "stall", "truncate", "chunked")


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.mode = "pass"
        self.count = 0
        self.stall = 5.0
        self.match = ""
        self.method = ""
        self.requests = 0
        self.faults = 0
        self.log = []
        self.recording = False
        self.delay = 0.0
        self.connections = 0

    def take(self, method="", target=""):
        """Count one proxied request and return the fault it gets."""
        with self.lock:
            self.requests += 1
            if self.match not in target or (self.method and self.method != method):
                return "pass"
            if self.count > 0 and self.mode != "pass":
                self.count -= 1
                self.faults += 1
                return self.mode
            return "pass"


STATE = State()


def read_request(rfile):
    """(method, target, version, [(name, value)], body) or None at EOF."""
    line = rfile.readline(MAX_LINE)
    while line in (b"\r\n", b"\n"):
        line = rfile.readline(MAX_LINE)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise ValueError("bad request line")
    headers = []
    while True:
        h = rfile.readline(MAX_LINE)
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    length = 0
    for name, value in headers:
        if name.lower() == "content-length":
            length = int(value)
        if name.lower() == "transfer-encoding":
            raise ValueError("chunked requests are not supported")
    body = rfile.read(length) if length else b""
    if len(body) != length:
        return None
    return parts[0], parts[1], parts[2], headers, body


def s3_error(status, reason, code, message):
    body = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
            '<Message>%s</Message><RequestId>faultproxy</RequestId></Error>'
            % (code, message)).encode()
    head = ("HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\n"
            "Content-Length: %d\r\nDate: %s\r\n\r\n"
            % (status, reason, len(body), http_date())).encode()
    return head + body


def http_date():
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())


def plain(status, text):
    body = text.encode()
    return ("HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
            % (status, len(body))).encode() + body


def reset_connection(sock):
    """Close with SO_LINGER 0 so the peer sees a TCP reset, not a clean EOF."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Handler(socketserver.StreamRequestHandler):
    def setup(self):
        super().setup()
        self.upstream = None
        with STATE.lock:
            STATE.connections += 1

    def finish(self):
        if self.upstream:
            self.upstream.close()
        try:
            super().finish()
        except OSError:
            pass

    def handle(self):
        while True:
            try:
                req = read_request(self.rfile)
            except (ValueError, OSError):
                return
            if req is None:
                return
            method, target, _, headers, body = req
            if target.startswith(CONTROL):
                if not self.control(target):
                    return
                continue
            if STATE.delay:
                time.sleep(STATE.delay)
            fault = STATE.take(method, target)
            if STATE.recording:
                entry = describe(method, target, headers, body)
                with STATE.lock:
                    STATE.log.append(entry)
            if fault == "slowdown":
                self.wfile.write(s3_error(503, "Slow Down", "SlowDown", "Please reduce your request rate."))
            elif fault == "internal":
                self.wfile.write(s3_error(500, "Internal Server Error", "InternalError",
                                          "We encountered an internal error. Please try again."))
            elif fault == "denied":
                self.wfile.write(s3_error(403, "Forbidden", "AccessDenied", "Access Denied"))
            elif fault == "reset":
                reset_connection(self.connection)
                return
            elif fault == "stall":
                time.sleep(STATE.stall)
                return
            elif not self.forward(method, target, headers, body, fault):
                return

    def control(self, target):
        url = urllib.parse.urlsplit(target)
        cmd = url.path[len(CONTROL):]
        q = dict(urllib.parse.parse_qsl(url.query))
        if cmd == "set":
            mode = q.get("mode", "pass")
            if mode not in MODES:
                self.wfile.write(plain(400, "unknown mode %s\n" % mode))
                return True
            with STATE.lock:
                STATE.mode = mode
                STATE.count = int(q.get("count", "1"))
                STATE.stall = float(q.get("stall", "5"))
                STATE.match = q.get("match", "")
                STATE.method = q.get("method", "")
            self.wfile.write(plain(200, "ok\n"))
        elif cmd == "record":
            with STATE.lock:
                STATE.recording = q.get("on", "1") == "1"
            self.wfile.write(plain(200, "ok\n"))
        elif cmd == "log":
            with STATE.lock:
                text = json.dumps(STATE.log)
            self.wfile.write(plain(200, text))
        elif cmd == "stats":
            with STATE.lock:
                text = "requests=%d faults=%d\n" % (STATE.requests, STATE.faults)
            self.wfile.write(plain(200, text))
        elif cmd == "connections":
            with STATE.lock:
                text = "connections=%d\n" % STATE.connections
            self.wfile.write(plain(200, text))
        elif cmd == "reset":
            with STATE.lock:
                STATE.mode, STATE.count, STATE.requests, STATE.faults = "pass", 0, 0, 0
                STATE.match = STATE.method = ""
                STATE.connections = 0
                STATE.log = []
            self.wfile.write(plain(200, "ok\n"))
        elif cmd == "quit":
            self.wfile.write(plain(200, "bye\n"))
            self.wfile.flush()
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return False
        else:
            self.wfile.write(plain(404, "unknown control command\n"))
        return True

    def forward(self, method, target, headers, body, fault):
        resp, data = None, b""
        for _ in range(2):  # a kept-alive upstream connection may have closed
            try:
                if self.upstream is None:
                    self.upstream = http.client.HTTPConnection(self.server.up_host, self.server.up_port, timeout=120)
                self.upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    if name.lower() not in ("connection", "proxy-connection", "keep-alive"):
                        self.upstream.putheader(name, value)
                self.upstream.endheaders(body if body else None)
                resp = self.upstream.getresponse()
                data = resp.read()
                break
            except (OSError, http.client.HTTPException):
                if self.upstream:
                    self.upstream.close()
                self.upstream = None
        if resp is None:
            self.wfile.write(s3_error(502, "Bad Gateway", "BadGateway", "faultproxy: upstream unreachable"))
            return True
        out = ["HTTP/1.1 %d %s\r\n" % (resp.status, resp.reason)]
        has_length = chunked = fault == "chunked" and method != "HEAD"
        for name, value in resp.getheaders():
            low = name.lower()
            if low in ("transfer-encoding", "connection", "keep-alive") or (chunked and low == "content-length"):
                continue
            has_length = has_length or low == "content-length"
            out.append("%s: %s\r\n" % (name, value))
        if not has_length and method != "HEAD":
            out.append("Content-Length: %d\r\n" % len(data))
        if fault == "flip" and method == "GET" and 200 <= resp.status < 300 and data:
            out.append("x-amz-checksum-crc32: %s\r\n" % b64be(zlib.crc32(data)))
            data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0x20]) + data[len(data) // 2 + 1:]
        if chunked:
            out.append("Transfer-Encoding: chunked\r\n")
        out.append("\r\n")
        self.wfile.write("".join(out).encode("latin-1"))
        if chunked:
            for i in range(0, len(data), 100):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data[i:i + 100]), data[i:i + 100]))
            self.wfile.write(b"0\r\n\r\n")
            return True
        if fault == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            reset_connection(self.connection)
            return False
        self.wfile.write(data)
        return True


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def watch_parent(server, parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    server.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--delay-ms", type=float, default=0, help="latency added to every proxied request")
    args = ap.parse_args()
    STATE.delay = args.delay_ms / 1000.0
    up = urllib.parse.urlsplit(args.upstream)
    if up.scheme != "http" or up.hostname not in ("127.0.0.1", "localhost"):
        sys.exit("faultproxy: the upstream must be http://127.0.0.1:PORT")
    server = Server(("127.0.0.1", args.port), Handler)
    server.up_host, server.up_port = up.hostname, up.port or 80
    print(server.server_address[1], flush=True)
    threading.Thread(target=watch_parent, args=(server, os.getppid()), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
