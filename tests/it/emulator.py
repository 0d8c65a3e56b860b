#!/usr/bin/env python3
"""A local AWS Lambda Runtime API (version 2018-06-01) for tests and demos.

Python 3 standard library only. It plays the Lambda service's side of a
custom runtime: it hands queued events to `next` (long poll: `next` blocks
until an event is queued), accepts `/response`, `/error` and `/init/error`,
and records every answer so that tests can assert on them.

It answers as AWS's Runtime Interface Emulator (RIE, whose lambda/rapi and
lambda/core code the service shares) does: the same limit (interop.
MaxPayloadSize, 6 MiB + 100 B), status codes, JSON bodies (errorMessage then
errorType, one line) and the per-invocation state machine (Ready ->
InvocationResponse/InvocationErrorResponse -> RuntimeResponseSentState): one
answer closes an invocation, a second one gets 403 InvalidStateTransition.
RIE serves one runtime; this emulator serves several at once (each
invocation has its own state), which is the one difference. That is also
how Lambda Managed Instances behave: a runtime started with
AWS_LAMBDA_MAX_CONCURRENCY=N keeps N `next` calls open, each handed its own
invocation and each answer accepted by its own request id while the others
are still running; stats count the most outstanding at once (maxInFlight).

Command line
    emulator.py [--host 127.0.0.1] [--port 0] [--port-file F]
                [--results F.jsonl] [--events FILE ...] [--repeat N]
                [--timeout-ms 3000] [--function-arn ARN]
                [--client-context JSON] [--cognito-identity JSON]
                [--tenant-id ID] [--no-trace] [--max-event-bytes N]
                [--next-500 N] [--drop N] [--drop-on next|response|error|init|any]
                [--exit-when-done] [--verbose]

    --port 0 picks a free port; --port-file receives it (written once the
    socket listens, so a test can wait for the file). Point the runtime at it
    with AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT.
    --events queues each FILE's bytes as one event (--repeat N times over).
    --max-event-bytes raises the event limit (default 6291556, Lambda's) so
    that a test can check a runtime's own guard; it never lowers RIE's.
    --exit-when-done stops the server once every queued event is answered
    (or after an /init/error). The exit status is 1 when an answer broke
    the protocol (see "problems" below), else 0.

Runtime API (what the runtime under test calls)
    GET  /2018-06-01/runtime/invocation/next
         200 + the event; headers Lambda-Runtime-Aws-Request-Id,
         Lambda-Runtime-Deadline-Ms, Lambda-Runtime-Invoked-Function-Arn,
         Lambda-Runtime-Trace-Id, and when the event has them
         Lambda-Runtime-Client-Context, Lambda-Runtime-Cognito-Identity,
         Lambda-Runtime-Aws-Tenant-Id.
    POST /2018-06-01/runtime/invocation/{id}/response
    POST /2018-06-01/runtime/invocation/{id}/error
         202 {"status":"OK"}: the answer closes the invocation.
         400 InvalidRequestID "Invalid request ID": an id that is not the
         current invocation's (unknown, still queued, or answered before a
         later invocation was handed out).
         403 InvalidStateTransition "State transition from
         RuntimeResponseSentState to InvocationResponse (or
         InvocationErrorResponse) failed for runtime. Error: State
         transition is not allowed": a second answer for the invocation
         just closed. Recorded with "problems" (the runtime broke the
         protocol).
         413 RequestEntityTooLarge "Exceeded maximum allowed payload size
         (6291556 bytes).": a /response body over the limit. The 413 itself
         closes the invocation, with the error Function.ResponseSizeTooLarge
         "Response payload size (N bytes) exceeded maximum allowed payload
         size (6291556 bytes)." (the record's "closedAs").
    POST /2018-06-01/runtime/init/error
         202; 403 InvalidStateTransition "State transition from InitError
         to InitError ..." for a second one.
    Any other path: 404 "404 page not found" (text/plain); another method
    on one of these paths: 405 with no body, as RIE's router answers.
    For /error and /init/error the Lambda-Runtime-Function-Error-Type header
    must be present and read Category.Reason, and the body must be a JSON
    object with string errorMessage and errorType (stackTrace a list if
    present); otherwise the answer is still accepted, as the service does,
    but recorded with "problems".

Control API (same port)
    POST /control/event[?count=N]   body = payload. Optional headers:
         X-Request-Id, X-Trace-Id, X-No-Trace: 1, X-Client-Context,
         X-Cognito-Identity, X-Tenant-Id, X-Timeout-Ms, X-Deadline-Ms.
         -> {"requestIds": [...]}; 413 RequestEntityTooLarge (RIE's body)
         for a payload over 6291556 bytes, which Lambda never delivers.
    GET  /control/result/{id}[?timeout=S]
         waits until the invocation is closed -> {"requestId", "final" (the
         answer that closed it: a 202, or the 413 with "closedAs"),
         "records": [every answer posted for it]}; 404 on timeout.
    GET  /control/init-error[?timeout=S]    the /init/error record or 404
    GET  /control/stats[?answered=N&next=N&timeout=S]
         counters (nextRequests, firstNextAt, lastNextAt as epoch seconds,
         queued, inFlight, maxInFlight, answered, problems); answered=N / next=N wait
         until that many invocations are answered / `next` calls arrived.
    POST /control/fault   JSON {"next500": N, "drop": N, "dropOn": "next"}
         the next N `next` calls get a 500; the next N calls of the kind
         dropOn get their connection closed without an answer.
    POST /control/shutdown

Records (one JSON object per line in --results, also in the control API)
    {"requestId", "kind": "response"|"error"|"init_error", "status": HTTP
     status answered, "contentType", "errorTypeHeader", "bodyLen", "body"
     (text, first 1 MiB), "problems": [..], "time": epoch seconds, and for
     the 413 "closedAs": {"errorType", "errorMessage"}}
"""
import argparse
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_PAYLOAD = 6 * 1024 * 1024 + 100   # RIE interop.MaxPayloadSize: events and responses
BODY_KEEP = 1 << 20             # what a record keeps of a body
API = "/2018-06-01/runtime"
ERROR_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)+$")
INVOCATION_RE = re.compile(r"^" + re.escape(API) + r"/invocation/([^/]+)/(response|error)$")


class State:
    """Everything the handlers share, behind one condition variable."""

    def __init__(self, opts):
        self.opts = opts
        self.cond = threading.Condition()
        self.queue = []             # events waiting for `next`
        self.events = {}            # id -> event (queued, in flight or done)
        self.records = {}           # id -> [records]
        self.init_error = None
        self.next_requests = 0
        self.first_next_at = None
        self.last_next_at = None
        self.answered = 0
        self.problems = 0
        self.queued_total = 0
        self.handed_out = 0         # sequence number of the last invocation handed out
        self.in_flight = 0          # handed out, not yet answered
        self.max_in_flight = 0      # the most at once
        self.next500 = opts.next_500
        self.drop = opts.drop
        self.drop_on = opts.drop_on
        self.stopping = False
        self.results = open(opts.results, "a", encoding="utf-8") if opts.results else None

    def add_event(self, payload, meta):
        rid = meta.get("requestId") or str(uuid.uuid4())
        ev = {"id": rid, "payload": payload, "state": "queued"}
        ev.update(meta)
        with self.cond:
            self.events[rid] = ev
            self.queue.append(ev)
            self.queued_total += 1
            self.cond.notify_all()
        return rid

    def record(self, rec):
        rec["time"] = time.time()
        with self.cond:
            if rec["problems"]:
                self.problems += 1
            if rec["kind"] == "init_error":
                if self.init_error is None:
                    self.init_error = rec
            else:
                self.records.setdefault(rec["requestId"], []).append(rec)
            if self.results:
                self.results.write(json.dumps(rec) + "\n")
                self.results.flush()
            self.cond.notify_all()

    def take_fault(self, kind):
        """Consume one injected fault for a request of `kind`, if any."""
        with self.cond:
            if kind == "next" and self.next500 > 0:
                self.next500 -= 1
                return "500"
            if self.drop > 0 and self.drop_on in (kind, "any"):
                self.drop -= 1
                return "drop"
        return None

    def done(self):
        with self.cond:
            if self.init_error is not None:
                return True
            busy = any(ev["state"] != "done" for ev in self.events.values())
            return self.queued_total > 0 and not busy

    def stats(self):
        with self.cond:
            states = [ev["state"] for ev in self.events.values()]
            return {"nextRequests": self.next_requests, "firstNextAt": self.first_next_at,
                    "lastNextAt": self.last_next_at, "queued": states.count("queued"),
                    "inFlight": states.count("in_flight"), "answered": self.answered,
                    "problems": self.problems, "initError": self.init_error is not None,
                    "maxInFlight": self.max_in_flight}


def check_error_report(headers, body):
    """What is wrong with an /error or /init/error call (empty list: nothing)."""
    problems = []
    etype = headers.get("Lambda-Runtime-Function-Error-Type")
    if etype is None:
        problems.append("missing Lambda-Runtime-Function-Error-Type header")
    elif not ERROR_TYPE_RE.match(etype):
        problems.append("Lambda-Runtime-Function-Error-Type %r is not Category.Reason" % etype)
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return problems + ["body is not JSON: %s" % e]
    if not isinstance(doc, dict):
        return problems + ["body is not a JSON object"]
    for field in ("errorMessage", "errorType"):
        if not isinstance(doc.get(field), str):
            problems.append("body has no string %s" % field)
    if "stackTrace" in doc and not isinstance(doc["stackTrace"], list):
        problems.append("stackTrace is not a list")
    return problems


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive, like the real endpoint
    disable_nagle_algorithm = True
    server_version = "lambda-emulator"
    sys_version = ""

    # ---- plumbing -------------------------------------------------------
    def log_message(self, fmt, *args):
        if self.server.state.opts.verbose:
            sys.stderr.write("emulator: %s\n" % (fmt % args))

    def reply(self, status, body=b"", ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):   # as Go's json.Encoder writes it
            body = (json.dumps(body, separators=(",", ":")) + "\n").encode()
        head = ["HTTP/1.1 %d %s" % (status, self.responses.get(status, ("",))[0]),
                "Content-Type: " + ctype, "Content-Length: %d" % len(body)]
        for k, v in (headers or {}).items():
            head.append("%s: %s" % (k, v))
        self.log_request(status, len(body))
        # one write: headers and body in one segment, no Nagle/delayed-ACK stall
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def client_alive(self):
        """False once the runtime has closed its end of the connection."""
        try:
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def read_body(self, keep=None):
        n = int(self.headers.get("Content-Length") or 0)
        data, left = [], n
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)
            if keep is None or sum(map(len, data)) < keep:
                data.append(chunk)
        return n, b"".join(data)

    def query(self):
        q = parse_qs(urlsplit(self.path).query)
        return {k: v[-1] for k, v in q.items()}

    # ---- routing --------------------------------------------------------
    def not_routed(self, path, method):
        """What RIE's router (go-chi) answers for a path or a method it has no route for."""
        if path == API + "/invocation/next" or path == API + "/init/error" or INVOCATION_RE.match(path):
            return self.reply(405, b"", ctype="text/plain")
        if path.startswith("/control/"):
            return self.reply(404, rie_error("NotFound", "%s %s" % (method, path)))
        return self.reply(404, b"404 page not found\n", ctype="text/plain; charset=utf-8")

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == API + "/invocation/next":
            return self.next_invocation()
        if path.startswith("/control/"):
            return self.control_get(path)
        return self.not_routed(path, "GET")

    def do_POST(self):
        path = urlsplit(self.path).path
        m = INVOCATION_RE.match(path)
        if m:
            return self.invocation_answer(m.group(1), m.group(2))
        if path == API + "/init/error":
            return self.init_error()
        if path.startswith("/control/"):
            return self.control_post(path)
        self.read_body()
        return self.not_routed(path, "POST")

    def do_PUT(self):
        self.read_body()
        return self.not_routed(urlsplit(self.path).path, "PUT")

    do_DELETE = do_PUT

    # ---- Runtime API ----------------------------------------------------
    def next_invocation(self):
        st = self.server.state
        with st.cond:
            st.next_requests += 1
            st.last_next_at = time.time()
            if st.first_next_at is None:
                st.first_next_at = st.last_next_at
            st.cond.notify_all()
        fault = st.take_fault("next")
        if fault == "500":
            return self.reply(500, {"errorType": "ServiceException", "errorMessage": "injected"})
        if fault == "drop":
            return self.drop()
        with st.cond:
            # a runtime killed while parked here must not take the next event
            while True:
                if st.stopping or not self.client_alive():
                    return self.drop()
                if st.queue:
                    break
                st.cond.wait(0.5)
            ev = st.queue.pop(0)
            ev["state"] = "in_flight"
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            st.handed_out += 1
            ev["seq"] = st.handed_out
        timeout = ev.get("timeoutMs", st.opts.timeout_ms)
        deadline = ev.get("deadlineMs") or int(time.time() * 1000) + int(timeout)
        h = {"Lambda-Runtime-Aws-Request-Id": ev["id"],
             "Lambda-Runtime-Deadline-Ms": str(deadline),
             "Lambda-Runtime-Invoked-Function-Arn": st.opts.function_arn}
        for key, name in (("traceId", "Trace-Id"), ("clientContext", "Client-Context"),
                          ("cognitoIdentity", "Cognito-Identity"), ("tenantId", "Aws-Tenant-Id")):
            if ev.get(key):
                h["Lambda-Runtime-" + name] = ev[key]
        self.reply(200, ev["payload"], headers=h)

    def invocation_answer(self, rid, kind):
        st = self.server.state
        if st.take_fault(kind) == "drop":
            self.read_body()
            return self.drop()
        n, body = self.read_body(keep=BODY_KEEP)
        rec = {"requestId": rid, "kind": kind, "contentType": self.headers.get("Content-Type"),
               "errorTypeHeader": self.headers.get("Lambda-Runtime-Function-Error-Type"),
               "bodyLen": n, "body": body[:BODY_KEEP].decode("utf-8", "replace"), "problems": []}
        with st.cond:
            ev = st.events.get(rid)
            state = ev["state"] if ev else None
            # RIE's AwsRequestIDValidator: the id must be the current invocation's,
            # which an answered one stays until the next invocation is handed out
            current = state == "in_flight" or (state == "done" and ev.get("seq") == st.handed_out)
        if not current:
            rec["status"] = 400
            rec["problems"].append("answer for %s request id" % ("an unknown" if not ev else "a " + state))
            st.record(rec)
            return self.reply(400, rie_error("InvalidRequestID", "Invalid request ID"))
        if state == "done":
            rec["status"] = 403
            rec["problems"].append("a second answer for a closed invocation")
            st.record(rec)
            return self.reply(403, invalid_transition(
                "RuntimeResponseSentState", "InvocationResponse" if kind == "response" else "InvocationErrorResponse"))
        if kind == "response" and n > MAX_PAYLOAD:
            rec["status"] = 413
            rec["closedAs"] = {"errorType": "Function.ResponseSizeTooLarge", "errorMessage":
                               "Response payload size (%d bytes) exceeded maximum allowed payload size "
                               "(%d bytes)." % (n, MAX_PAYLOAD)}
            self.close_invocation(ev, rec)
            return self.reply(413, rie_error("RequestEntityTooLarge", "Exceeded maximum allowed payload size "
                                             "(%d bytes)." % MAX_PAYLOAD))
        if kind == "error":
            rec["problems"] = check_error_report(self.headers, body)
        rec["status"] = 202
        self.close_invocation(ev, rec)
        self.reply(202, {"status": "OK"})
        self.maybe_exit()

    def close_invocation(self, ev, rec):
        st = self.server.state
        with st.cond:
            ev["state"] = "done"
            ev["final"] = rec
            st.answered += 1
            st.in_flight -= 1
        st.record(rec)

    def init_error(self):
        st = self.server.state
        if st.take_fault("init") == "drop":
            self.read_body()
            return self.drop()
        n, body = self.read_body(keep=BODY_KEEP)
        rec = {"requestId": None, "kind": "init_error", "status": 202,
               "contentType": self.headers.get("Content-Type"),
               "errorTypeHeader": self.headers.get("Lambda-Runtime-Function-Error-Type"),
               "bodyLen": n, "body": body.decode("utf-8", "replace"),
               "problems": check_error_report(self.headers, body)}
        with st.cond:
            again = st.init_error is not None
        if again:
            rec["status"] = 403
            rec["problems"].append("a second /init/error")
            st.record(rec)
            return self.reply(403, invalid_transition("InitError", "InitError"))
        st.record(rec)
        self.reply(202, {"status": "OK"})
        self.maybe_exit()

    def maybe_exit(self):
        st = self.server.state
        if st.opts.exit_when_done and st.done():
            threading.Thread(target=stop_server, args=(self.server,), daemon=True).start()

    # ---- control API ----------------------------------------------------
    def control_get(self, path):
        st, q = self.server.state, self.query()
        limit = time.time() + float(q.get("timeout", "10"))
        if path.startswith("/control/result/"):
            rid = path[len("/control/result/"):]
            with st.cond:
                while not st.events.get(rid, {}).get("state") == "done" and time.time() < limit:
                    st.cond.wait(max(0.0, limit - time.time()))
                recs = list(st.records.get(rid, []))
                final = st.events.get(rid, {}).get("final")
            if not final:
                return self.reply(404, {"requestId": rid, "records": recs})
            return self.reply(200, {"requestId": rid, "final": final, "records": recs})
        if path == "/control/init-error":
            with st.cond:
                while st.init_error is None and time.time() < limit:
                    st.cond.wait(max(0.0, limit - time.time()))
                rec = st.init_error
            return self.reply(200 if rec else 404, rec or {})
        if path == "/control/stats":
            want, want_next = int(q.get("answered", "0")), int(q.get("next", "0"))
            with st.cond:
                while (st.answered < want or st.next_requests < want_next) and time.time() < limit:
                    st.cond.wait(max(0.0, limit - time.time()))
            return self.reply(200, st.stats())
        self.reply(404, rie_error("NotFound", path))

    def control_post(self, path):
        st = self.server.state
        _, body = self.read_body()
        if path == "/control/event":
            limit = max(MAX_PAYLOAD, st.opts.max_event_bytes)
            if len(body) > limit:
                return self.reply(413, rie_error("RequestEntityTooLarge", "Exceeded maximum allowed payload "
                                                 "size (%d bytes)." % limit))
            meta = event_meta(st.opts)
            h = self.headers
            for hdr, key in (("X-Request-Id", "requestId"), ("X-Trace-Id", "traceId"),
                             ("X-Client-Context", "clientContext"), ("X-Cognito-Identity", "cognitoIdentity"),
                             ("X-Tenant-Id", "tenantId")):
                if h.get(hdr) is not None:
                    meta[key] = h.get(hdr)
            if h.get("X-No-Trace") == "1":
                meta.pop("traceId", None)
            for hdr, key in (("X-Timeout-Ms", "timeoutMs"), ("X-Deadline-Ms", "deadlineMs")):
                if h.get(hdr):
                    meta[key] = int(h.get(hdr))
            ids = []
            for i in range(int(self.query().get("count", "1"))):
                one = dict(meta)
                if i and "requestId" in one:
                    one["requestId"] = "%s-%d" % (meta["requestId"], i)
                if i and "traceId" in one and h.get("X-Trace-Id") is None:
                    one["traceId"] = trace_id()     # a fresh trace per event
                ids.append(st.add_event(body, one))
            return self.reply(200, {"requestIds": ids})
        if path == "/control/fault":
            f = json.loads(body or b"{}")
            with st.cond:
                st.next500 = int(f.get("next500", st.next500))
                st.drop = int(f.get("drop", st.drop))
                st.drop_on = f.get("dropOn", st.drop_on)
            return self.reply(200, {"next500": st.next500, "drop": st.drop, "dropOn": st.drop_on})
        if path == "/control/shutdown":
            self.reply(200, {"status": "stopping"})
            threading.Thread(target=stop_server, args=(self.server,), daemon=True).start()
            return None
        self.reply(404, rie_error("NotFound", path))


def rie_error(etype, message):
    """RIE's model.ErrorResponse, in its field order."""
    return {"errorMessage": message, "errorType": etype}


def invalid_transition(src, dst):
    """RIE's answer to an answer the runtime state machine does not allow."""
    return rie_error("InvalidStateTransition", "State transition from %s to %s failed for runtime. "
                     "Error: State transition is not allowed" % (src, dst))


def trace_id():
    """An X-Ray trace header of the shape Lambda sends."""
    return "Root=1-%08x-%s;Parent=%s;Sampled=0" % (int(time.time()), os.urandom(12).hex(),
                                                   os.urandom(8).hex())


def event_meta(opts):
    meta = {}
    if not opts.no_trace:
        meta["traceId"] = trace_id()
    for key in ("client_context", "cognito_identity", "tenant_id"):
        if getattr(opts, key):
            parts = key.split("_")
            meta[parts[0] + "".join(p.title() for p in parts[1:])] = getattr(opts, key)
    return meta


def stop_server(server):
    st = server.state
    with st.cond:
        st.stopping = True
        st.cond.notify_all()
    server.shutdown()


def parse_args(argv):
    p = argparse.ArgumentParser(description="Local AWS Lambda Runtime API (2018-06-01) for tests.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--results", help="append one JSON record per answer to this file")
    p.add_argument("--events", nargs="*", default=[], help="files, one event each")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--timeout-ms", type=int, default=3000, help="deadline = hand-out time + this")
    p.add_argument("--function-arn", default="arn:aws:lambda:us-east-1:123456789012:function:emulated")
    p.add_argument("--client-context")
    p.add_argument("--cognito-identity")
    p.add_argument("--tenant-id")
    p.add_argument("--no-trace", action="store_true", help="send no Lambda-Runtime-Trace-Id")
    p.add_argument("--max-event-bytes", type=int, default=MAX_PAYLOAD,
                   help="accept larger events than Lambda (to test a runtime's own guard)")
    p.add_argument("--next-500", type=int, default=0, help="answer the first N next calls with 500")
    p.add_argument("--drop", type=int, default=0, help="close N connections without answering")
    p.add_argument("--drop-on", default="next", choices=["next", "response", "error", "init", "any"])
    p.add_argument("--exit-when-done", action="store_true")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def make_server(opts):
    """The server, listening, with opts.events queued. Serve it yourself."""
    server = ThreadingHTTPServer((opts.host, opts.port), Handler)
    server.daemon_threads = True
    server.state = State(opts)
    for _ in range(opts.repeat):
        for f in opts.events:
            with open(f, "rb") as fh:
                payload = fh.read()
            if len(payload) > max(MAX_PAYLOAD, opts.max_event_bytes):
                sys.exit("emulator: %s: %d bytes, over the %d-byte event limit" % (f, len(payload), MAX_PAYLOAD))
            server.state.add_event(payload, event_meta(opts))
    return server


def main(argv=None):
    opts = parse_args(argv)
    server = make_server(opts)
    port = server.server_address[1]
    if opts.port_file:
        tmp = opts.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, opts.port_file)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(
        target=stop_server, args=(server,), daemon=True).start())
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    server.server_close()
    return 1 if server.state.problems else 0


if __name__ == "__main__":
    sys.exit(main())
