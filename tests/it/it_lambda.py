#!/usr/bin/env python3
"""Integration cases for the lambda section: build/hello/bootstrap driven
through tests/it/emulator.py (the Runtime API) and through `--event FILE`.

    tests/it/it_lambda.py BOOTSTRAP [PLAIN_BOOTSTRAP] [NAME_FILTER]

BOOTSTRAP serves the functional cases (a sanitizer build when there is
one); PLAIN_BOOTSTRAP, an optimised build, the memory and valgrind cases. Prints
`ok CASE` / `FAIL CASE: expected ... got ...` and the summary line.
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulator.py")
MAX_PAYLOAD = 6 * 1024 * 1024 + 100     # Lambda's limit (RIE interop.MaxPayloadSize), SPIM_LAMBDA_PAYLOAD_MAX


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def expect(cond, what, expected, got):
    if not cond:
        raise Failure("%s: expected %s got %s" % (what, expected, short(got)))


def expect_eq(what, expected, got):
    expect(expected == got, what, short(expected), got)


def short(v):
    s = v if isinstance(v, str) else repr(v)
    return s if len(s) <= 300 else s[:300] + "...(%d chars)" % len(s)


class Emulator:
    """tests/it/emulator.py in its own process, with a client for its control API."""

    def __init__(self, tmp, *args):
        self.tmp = tmp
        self.port_file = tempfile.mktemp(prefix="port-", dir=tmp)
        self.log = open(os.path.join(tmp, "emulator.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, EMULATOR, "--port-file", self.port_file,
                                      "--results", os.path.join(tmp, "results.jsonl")] + list(args),
                                     stdout=self.log, stderr=self.log)
        limit = time.time() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > limit:
                raise Failure("emulator did not start (see %s/emulator.log)" % tmp)
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())
        self.api = "127.0.0.1:%d" % self.port

    def call(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if data else None)
        finally:
            conn.close()

    def event(self, payload, count=1, want_status=200, **headers):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode()
        hdrs = {"X-" + k.replace("_", "-").title(): str(v) for k, v in headers.items()}
        status, doc = self.call("POST", "/control/event?count=%d" % count, payload, hdrs)
        expect_eq("POST /control/event status", want_status, status)
        if status != 200:
            return doc
        return doc["requestIds"] if count > 1 else doc["requestIds"][0]

    def result(self, rid, timeout=30):
        status, doc = self.call("GET", "/control/result/%s?timeout=%d" % (rid, timeout), timeout=timeout + 10)
        expect(status == 200, "an accepted answer for " + rid, "one", doc)
        return doc

    def stats(self, answered=0, timeout=60, next_calls=0):
        return self.call("GET", "/control/stats?answered=%d&next=%d&timeout=%d" % (answered, next_calls, timeout),
                         timeout=timeout + 10)[1]

    def fault(self, **f):
        return self.call("POST", "/control/fault", json.dumps(f))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Bootstrap:
    """The function under test, its stderr kept in a file."""

    def __init__(self, exe, tmp, api=None, args=(), **env):
        self.log_path = tempfile.mktemp(prefix="bootstrap-", suffix=".log", dir=tmp)
        e = dict(os.environ)
        for k in ("AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL",
                  "_X_AMZN_TRACE_ID", "HELLO_FAIL_INIT", "AWS_LAMBDA_MAX_CONCURRENCY"):
            e.pop(k, None)
        if api:
            e["AWS_LAMBDA_RUNTIME_API"] = api
        e.update(env)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([exe] + list(args), env=e, stdout=subprocess.PIPE, stderr=log)

    def wait(self, timeout=30):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
            self.stdout = out
            return self.proc.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.wait(10)

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise Failure("no VmRSS for pid %d" % self.proc.pid)


def run_local(exe, tmp, payload, **env):
    path = tempfile.mktemp(prefix="event-", suffix=".json", dir=tmp)
    with open(path, "wb") as f:
        f.write(payload if isinstance(payload, bytes) else payload.encode())
    b = Bootstrap(exe, tmp, None, ["--event", path], **env)
    rc = b.wait()
    return rc, b.stdout, b.log()


def error_doc(rec):
    try:
        return json.loads(rec["body"])
    except ValueError:
        raise Failure("error body is JSON: expected JSON got %s" % short(rec["body"]))


# ---------------------------------------------------------------------------
# Cases sharing one emulator and one running bootstrap ("env").

def case_echo(env):
    payload = '{"hello":"world","n":[1,2,3],"s":"quote \\" backslash \\\\ é ✓"}'
    doc = env.emu.result(env.emu.event(payload))
    rec = doc["final"]
    expect_eq("kind", "response", rec["kind"])
    expect_eq("echoed body", payload, rec["body"])
    expect_eq("content type", "application/json", rec["contentType"])
    expect_eq("problems", [], rec["problems"])


def case_content_type_and_size(env):
    rec = env.emu.result(env.emu.event({"size": 1000}))["final"]
    expect_eq("content type", "text/plain", rec["contentType"])
    expect_eq("body", "x" * 1000, rec["body"])


def case_empty_payload(env):
    rec = env.emu.result(env.emu.event(b""))["final"]
    expect_eq("kind", "response", rec["kind"])
    expect_eq("body length", 0, rec["bodyLen"])


def case_handler_failure(env):
    message = 'bad "thing"\nsecond line \\ é'
    rec = env.emu.result(env.emu.event({"fail": message}))["final"]
    expect_eq("kind", "error", rec["kind"])
    expect_eq("Lambda-Runtime-Function-Error-Type", "Function.HelloError", rec["errorTypeHeader"])
    doc = error_doc(rec)
    expect_eq("errorMessage", message, doc.get("errorMessage"))
    expect_eq("errorType", "HelloError", doc.get("errorType"))
    expect_eq("stackTrace", [], doc.get("stackTrace"))
    expect_eq("emulator's protocol problems", [], rec["problems"])
    expect(env.boot.proc.poll() is None, "bootstrap running", "alive", env.boot.proc.returncode)


def case_trace_id_propagation(env):
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    doc = json.loads(env.emu.result(env.emu.event({"trace": True}, trace_id=trace))["final"]["body"])
    expect_eq("invocation trace id", trace, doc["traceId"])
    expect_eq("$_X_AMZN_TRACE_ID in the handler", trace, doc["envTraceId"])
    doc = json.loads(env.emu.result(env.emu.event({"trace": True}, no_trace=1))["final"]["body"])
    expect_eq("trace id when absent", None, doc["traceId"])
    expect_eq("$_X_AMZN_TRACE_ID after an invocation without one", None, doc["envTraceId"])


def case_invocation_headers(env):
    rid = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    doc = json.loads(env.emu.result(env.emu.event(
        {"trace": True}, request_id=rid, client_context='{"client":{"app_title":"t"}}',
        cognito_identity='{"cognitoIdentityId":"id-1"}', tenant_id="tenant-42"))["final"]["body"])
    expect_eq("request id", rid, doc["requestId"])
    expect_eq("function ARN", "arn:aws:lambda:us-east-1:123456789012:function:emulated", doc["functionArn"])
    expect_eq("client context", '{"client":{"app_title":"t"}}', doc["clientContext"])
    expect_eq("cognito identity", '{"cognitoIdentityId":"id-1"}', doc["cognitoIdentity"])
    expect_eq("tenant id", "tenant-42", doc["tenantId"])


def case_deadline_and_remaining(env):
    before = int(time.time() * 1000)
    doc = json.loads(env.emu.result(env.emu.event({"trace": True}, timeout_ms=60000))["final"]["body"])
    after = int(time.time() * 1000)
    expect(before + 60000 <= doc["deadlineMs"] <= after + 60000, "deadline",
           "in [%d, %d]" % (before + 60000, after + 60000), doc["deadlineMs"])
    expect(0 < doc["remainingMs"] <= 60000, "remaining ms", "in (0, 60000]", doc["remainingMs"])
    expect(doc["remainingMs"] >= doc["deadlineMs"] - after, "remaining ms vs deadline",
           ">= %d" % (doc["deadlineMs"] - after), doc["remainingMs"])
    past = int(time.time() * 1000) - 5000
    doc = json.loads(env.emu.result(env.emu.event({"trace": True}, deadline_ms=past))["final"]["body"])
    expect_eq("remaining ms after the deadline", 0, doc["remainingMs"])


def padded_event(total, **fields):
    """A JSON event of exactly `total` bytes: `fields` plus a padding string."""
    head = json.dumps(dict(fields, pad=""))[:-3].encode()   # ends with '"pad": '
    return head + b'"' + b"y" * (total - len(head) - 3) + b'"}'


def case_response_too_large(env):
    """RIE: the 413 closes the invocation as Function.ResponseSizeTooLarge;
    the runtime posts nothing more for it and goes on to the next event."""
    problems = env.emu.stats()["problems"]
    rid = env.emu.event({"size": MAX_PAYLOAD + 1})
    doc = env.emu.result(rid)
    rec = doc["final"]
    expect_eq("answer that closed it", ("response", 413), (rec["kind"], rec["status"]))
    expect_eq("closed as", {"errorType": "Function.ResponseSizeTooLarge", "errorMessage":
                            "Response payload size (6291557 bytes) exceeded maximum allowed payload size "
                            "(6291556 bytes)."}, rec["closedAs"])
    after = env.emu.result(env.emu.event({"after": "413"}))["final"]
    expect_eq("the next invocation is served", '{"after": "413"}', after["body"])
    records = env.emu.result(rid)["records"]
    expect_eq("answers posted for the refused one", [("response", 413)],
              [(r["kind"], r["status"]) for r in records])
    log = env.boot.log()
    expect("response of 6291557 bytes refused (413" in log, "bootstrap log", "the refused size", log[-2000:])
    expect_eq("protocol problems", problems, env.emu.stats()["problems"])


def case_response_at_the_limit(env):
    rec = env.emu.result(env.emu.event({"size": MAX_PAYLOAD}))["final"]
    expect_eq("kind", "response", rec["kind"])
    expect_eq("status", 202, rec["status"])
    expect_eq("body length", MAX_PAYLOAD, rec["bodyLen"])


def case_event_at_the_limit(env):
    """An event of 6 MiB + 100 B, the platform's limit, is handled."""
    big = padded_event(MAX_PAYLOAD, size=3)
    expect_eq("event size", MAX_PAYLOAD, len(big))
    rec = env.emu.result(env.emu.event(big), timeout=60)["final"]
    expect_eq("answer", ("response", 202, "xxx"), (rec["kind"], rec["status"], rec["body"]))


def case_event_over_the_limit_refused_by_the_platform(env):
    """One byte more: refused at the invoke, as RIE does; never delivered
    (the next event handed out is the one queued after it)."""
    doc = env.emu.event(padded_event(MAX_PAYLOAD + 1, size=3), want_status=413)
    expect_eq("answer", {"errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).",
                         "errorType": "RequestEntityTooLarge"}, doc)
    rec = env.emu.result(env.emu.event({"after": "refused"}))["final"]
    expect_eq("next event", '{"after": "refused"}', rec["body"])


def case_rie_answers(env):
    """The Runtime API's answers, byte for byte as RIE renders them."""
    problems = env.emu.stats()["problems"]
    rid = env.emu.event({"a": "rie"})
    env.emu.result(rid)
    conn = http.client.HTTPConnection("127.0.0.1", env.emu.port, timeout=10)
    try:
        def post(path, body=b"{}", headers=None):
            conn.request("POST", "/2018-06-01/runtime" + path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        err = {"Lambda-Runtime-Function-Error-Type": "Runtime.Late", "Content-Type": "application/json"}
        late = b'{"errorMessage":"late","errorType":"Runtime.Late"}'
        expect_eq("second answer (/error) for the invocation just answered",
                  (403, "application/json",
                   b'{"errorMessage":"State transition from RuntimeResponseSentState to InvocationErrorResponse '
                   b'failed for runtime. Error: State transition is not allowed","errorType":'
                   b'"InvalidStateTransition"}\n'), post("/invocation/%s/error" % rid, late, err))
        expect_eq("second answer (/response)", 403, post("/invocation/%s/response" % rid)[0])
        expect_eq("unknown request id", (400, "application/json",
                                         b'{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}\n'),
                  post("/invocation/no-such-id/response"))
        env.emu.result(env.emu.event({"a": "later"}))
        expect_eq("an old id once a later invocation was handed out", 400,
                  post("/invocation/%s/error" % rid, late, err)[0])
        conn.request("GET", "/2018-06-01/runtime/no-such-route")
        r = conn.getresponse()
        expect_eq("unknown path", (404, "404 page not found\n"), (r.status, r.read().decode()))
        expect_eq("wrong method", (405, b""), post("/invocation/next")[0::2])
    finally:
        conn.close()
    records = env.emu.result(rid)["records"]
    expect_eq("records", [("response", 202), ("error", 403), ("response", 403), ("error", 400)],
              [(r["kind"], r["status"]) for r in records])
    expect_eq("final", 202, env.emu.result(rid)["final"]["status"])
    expect_eq("protocol problems (ours, on purpose)", problems + 4, env.emu.stats()["problems"])


def case_header_too_large(env):
    rec = env.emu.result(env.emu.event({"cc": 1}, client_context="c" * 20000))["final"]
    expect_eq("kind", "error", rec["kind"])
    expect_eq("error type header", "Runtime.InvalidInvocation", rec["errorTypeHeader"])
    expect("Lambda-Runtime-Client-Context" in error_doc(rec)["errorMessage"], "errorMessage",
           "names the header", error_doc(rec)["errorMessage"])


def case_dropped_connections_recover(env):
    # The bootstrap is already parked in a `next` call: the drops hit the
    # calls that follow the answer to the first event. libcurl itself retries
    # once when a reused keep-alive connection turns out dead, so two drops
    # cost one or two of our retries.
    before = env.boot.log().count("), retrying")
    env.emu.fault(drop=2, dropOn="next")
    env.emu.result(env.emu.event({"first": 1}))
    rec = env.emu.result(env.emu.event({"after": "drops"}))["final"]
    expect_eq("answer after two dropped next calls", '{"after": "drops"}', rec["body"])
    retries = env.boot.log().count("), retrying") - before
    expect(1 <= retries <= 2, "retry log lines", "1 or 2", retries)
    env.emu.fault(drop=1, dropOn="response")
    doc = env.emu.result(env.emu.event({"after": "dropped response"}))
    expect_eq("final answer after a dropped /response", '{"after": "dropped response"}', doc["final"]["body"])
    expect_eq("fault consumed", 0, env.emu.fault()[1]["drop"])
    expect(env.boot.proc.poll() is None, "bootstrap running", "alive", env.boot.proc.returncode)


def case_payload_not_logged_at_info(env):
    env.emu.result(env.emu.event({"secret": "s3cr3t-payload-marker"}))
    expect("s3cr3t-payload-marker" not in env.boot.log(), "stderr at INFO", "no payload", env.boot.log()[-300:])


SHARED = [case_echo, case_content_type_and_size, case_empty_payload, case_handler_failure,
          case_trace_id_propagation, case_invocation_headers, case_deadline_and_remaining,
          case_response_too_large, case_response_at_the_limit, case_event_at_the_limit,
          case_event_over_the_limit_refused_by_the_platform, case_rie_answers,
          case_header_too_large, case_dropped_connections_recover, case_payload_not_logged_at_info]


# ---------------------------------------------------------------------------
# Cases with their own emulator and bootstrap.

def case_init_failure(exe, tmp):
    emu = Emulator(tmp)
    try:
        boot = Bootstrap(exe, tmp, emu.api, HELLO_FAIL_INIT="1")
        rc = boot.wait()
        expect_eq("bootstrap exit status", 1, rc)
        status, rec = emu.call("GET", "/control/init-error?timeout=5")
        expect_eq("an /init/error was posted", 200, status)
        expect_eq("error type header", "Runtime.ConfigInvalid", rec["errorTypeHeader"])
        doc = error_doc(rec)
        expect_eq("errorType", "Runtime.ConfigInvalid", doc.get("errorType"))
        expect("HELLO_FAIL_INIT" in doc.get("errorMessage", ""), "errorMessage", "the reason", doc)
        expect_eq("protocol problems", [], rec["problems"])
        expect_eq("next calls before init succeeded", 0, emu.stats()["nextRequests"])
        status, doc = emu.call("POST", "/2018-06-01/runtime/init/error", b'{"errorMessage":"again","errorType":"X.Y"}',
                               {"Lambda-Runtime-Function-Error-Type": "X.Y"})
        expect_eq("a second /init/error (RIE: InitError -> InitError is not allowed)",
                  (403, {"errorMessage": "State transition from InitError to InitError failed for runtime. "
                                         "Error: State transition is not allowed",
                         "errorType": "InvalidStateTransition"}), (status, doc))
        status, rec = emu.call("GET", "/control/init-error?timeout=5")
        expect_eq("the recorded init error is the first", "Runtime.ConfigInvalid", rec["errorTypeHeader"])
    finally:
        emu.stop()


def case_next_500_exits(exe, tmp):
    emu = Emulator(tmp, "--next-500", "1")
    try:
        boot = Bootstrap(exe, tmp, emu.api)
        rc = boot.wait()
        expect_eq("exit status after a 500 from next", 1, rc)
        expect_eq("next calls (no retry after a 500)", 1, emu.stats()["nextRequests"])
        expect("answered 500 to next" in boot.log(), "log line", "'answered 500 to next'", boot.log())
    finally:
        emu.stop()


def case_api_gone_bounded_retries(exe, tmp):
    emu = Emulator(tmp)
    emu.stop()                       # the port is now closed: connection refused
    boot = Bootstrap(exe, tmp, emu.api)
    rc = boot.wait()
    log = boot.log()
    expect_eq("exit status with the API gone", 1, rc)
    expect_eq("retry log lines", 4, log.count("), retrying"))
    last = [l for l in log.splitlines() if l.strip()][-1]
    expect("unreachable after 5 attempts" in last, "last log line", "'unreachable after 5 attempts'", last)


def case_api_dies_mid_run(exe, tmp):
    emu = Emulator(tmp)
    boot = Bootstrap(exe, tmp, emu.api)
    try:
        emu.result(emu.event({"before": "death"}))
        emu.stop()
        rc = boot.wait()
        expect_eq("exit status after the API went away", 1, rc)
        expect("unreachable after 5 attempts" in boot.log(), "log", "'unreachable after 5 attempts'", boot.log())
    finally:
        boot.stop()


def case_json_log_format(exe, tmp):
    emu = Emulator(tmp)
    boot = Bootstrap(exe, tmp, emu.api, AWS_LAMBDA_LOG_FORMAT="JSON")
    try:
        rid = emu.event({"log": "hi there", "fail": "json failure"})
        emu.result(rid)
        boot.stop()
        lines = [l for l in boot.log().splitlines() if l.strip()]
        docs = []
        for l in lines:
            try:
                docs.append(json.loads(l))
            except ValueError:
                raise Failure("JSON log line: expected JSON got %s" % short(l))
        hello = [d for d in docs if d.get("message") == "hello"]
        expect_eq("'hello' lines", 1, len(hello))
        expect_eq("requestId of the handler's line", rid, hello[0].get("requestId"))
        expect_eq("level", "INFO", hello[0].get("level"))
        expect_eq("field", "hi there", hello[0].get("text"))
        failed = [d for d in docs if d.get("message") == "invocation failed"]
        expect_eq("'invocation failed' lines", 1, len(failed))
        expect_eq("its errorType", "HelloError", failed[0].get("errorType"))
        expect_eq("its level", "ERROR", failed[0].get("level"))
    finally:
        boot.stop()
        emu.stop()


def case_debug_logs_payload_truncated(exe, tmp):
    emu = Emulator(tmp)
    boot = Bootstrap(exe, tmp, emu.api, AWS_LAMBDA_LOG_LEVEL="DEBUG")
    try:
        emu.result(emu.event('"' + "z" * 5000 + '"'))
        boot.stop()
        lines = [l for l in boot.log().splitlines() if "event of 5002 bytes" in l]
        expect_eq("debug event lines", 1, len(lines))
        expect(lines[0].count("z") == 255, "payload shown in the debug line", "255 bytes of it",
               "%d" % lines[0].count("z"))
    finally:
        boot.stop()
        emu.stop()


def case_local_invoke(exe, tmp):
    payload = '{"local": true, "n": 1}'
    rc, out, log = run_local(exe, tmp, payload)
    expect_eq("exit status", 0, rc)
    expect_eq("stdout", payload, out.decode())
    rc, out, log = run_local(exe, tmp, '{"fail": "nope"}')
    expect_eq("exit status of a failed invocation", 1, rc)
    doc = json.loads(out)
    expect_eq("error JSON on stdout", {"errorMessage": "nope", "errorType": "HelloError", "stackTrace": []}, doc)
    rc, out, log = run_local(exe, tmp, payload, HELLO_FAIL_INIT="1")
    expect_eq("exit status of a failed init", 1, rc)
    expect_eq("init error type", "Runtime.ConfigInvalid", json.loads(out).get("errorType"))
    trace = "Root=1-00000000-000000000000000000000000"
    rc, out, log = run_local(exe, tmp, '{"trace": true}', _X_AMZN_TRACE_ID=trace)
    doc = json.loads(out)
    expect_eq("local trace id", trace, doc["traceId"])
    expect(doc["remainingMs"] > 0, "local remaining ms", "> 0", doc["remainingMs"])


def case_usage(exe, tmp):
    """Exit status 0 for --help (usage on stdout), 2 for a usage error (the
    argument and the rule on stderr), 1 when the invocation fails."""
    b = Bootstrap(exe, tmp)
    expect_eq("exit status without AWS_LAMBDA_RUNTIME_API or --event", 2, b.wait())
    expect("AWS_LAMBDA_RUNTIME_API is not set (outside Lambda, pass --event FILE)" in b.log(), "stderr",
           "the variable and the rule", b.log())
    expect("usage:" in b.log(), "stderr", "usage", b.log())
    b = Bootstrap(exe, tmp, None, ["--event", os.path.join(tmp, "no-such-file.json")])
    expect_eq("exit status with a missing event file", 1, b.wait())
    expect("no-such-file.json" in b.log(), "stderr", "the file name", b.log())
    b = Bootstrap(exe, tmp, None, ["--bogus"])
    expect_eq("exit status with an unknown option", 2, b.wait())
    expect("--bogus is not an option (the only one is --event FILE)" in b.log(), "stderr", "the option named",
           b.log())
    b = Bootstrap(exe, tmp, None, ["--event"])
    expect_eq("exit status for --event without a FILE", 2, b.wait())
    expect("--event needs a FILE" in b.log(), "stderr", "the rule", b.log())
    for flag in ("--help", "-h"):
        b = Bootstrap(exe, tmp, None, [flag])
        expect_eq("exit status of " + flag, 0, b.wait())
        expect(b.stdout.startswith(b"usage:"), flag + " stdout", "usage", b.stdout)
        expect_eq(flag + " stderr", "", b.log())


def case_emulator_flags_bad_error_report(exe, tmp):
    """The emulator's own checks can fail: a malformed /error is recorded with problems."""
    emu = Emulator(tmp)
    try:
        rid = emu.event({"x": 1})
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
        conn.request("GET", "/2018-06-01/runtime/invocation/next")
        r = conn.getresponse()
        r.read()
        expect_eq("request id from next", rid, r.getheader("Lambda-Runtime-Aws-Request-Id"))
        for h in ("Lambda-Runtime-Deadline-Ms", "Lambda-Runtime-Invoked-Function-Arn", "Lambda-Runtime-Trace-Id"):
            expect(r.getheader(h), "header " + h, "present", r.getheaders())
        conn.request("POST", "/2018-06-01/runtime/invocation/%s/error" % rid, body=b"not json",
                     headers={"Lambda-Runtime-Function-Error-Type": "Unhandled"})
        r = conn.getresponse()
        r.read()
        conn.close()
        rec = emu.result(rid)["final"]
        expect_eq("problems found", 2, len(rec["problems"]))
    finally:
        emu.stop()


def case_event_over_the_limit_refused_by_the_runtime(exe, tmp):
    """Should a Runtime API ever send more than Lambda's limit, the runtime
    refuses the event (Runtime.InvalidInvocation) and serves the next one."""
    emu = Emulator(tmp, "--max-event-bytes", str(MAX_PAYLOAD + 1))
    boot = Bootstrap(exe, tmp, emu.api)
    try:
        rec = emu.result(emu.event(padded_event(MAX_PAYLOAD + 1, size=3)), timeout=60)["final"]
        expect_eq("answer", ("error", 202, "Runtime.InvalidInvocation"),
                  (rec["kind"], rec["status"], rec["errorTypeHeader"]))
        expect("6291556" in error_doc(rec)["errorMessage"], "errorMessage", "the limit", rec["body"])
        rec = emu.result(emu.event({"after": "big"}))["final"]
        expect_eq("next event after an oversized one", '{"after": "big"}', rec["body"])
    finally:
        boot.stop()
        emu.stop()


def case_memory_flat(exe, tmp):
    emu = Emulator(tmp)
    boot = Bootstrap(exe, tmp, emu.api)
    try:
        payload = json.dumps({"records": [{"key": "photo-%d.jpg" % i} for i in range(40)]})
        emu.event(payload, count=100)
        expect(emu.stats(answered=100, timeout=120)["answered"] >= 100, "answered", 100, emu.stats())
        rss100 = boot.rss_kib()
        emu.event(payload, count=900)
        expect(emu.stats(answered=1000, timeout=300)["answered"] >= 1000, "answered", 1000, emu.stats())
        rss1000 = boot.rss_kib()
        print("# VmRSS after 100 invocations: %d KiB, after 1000: %d KiB" % (rss100, rss1000))
        expect(rss1000 - rss100 < 512, "VmRSS growth from 100 to 1000 invocations", "< 512 KiB",
               "%d KiB (%d -> %d)" % (rss1000 - rss100, rss100, rss1000))
        expect_eq("protocol problems", 0, emu.stats()["problems"])
    finally:
        boot.stop()
        emu.stop()


def case_killed_runtime_takes_no_event(exe, tmp):
    emu = Emulator(tmp)
    first = Bootstrap(exe, tmp, emu.api)
    second = None
    try:
        expect_eq("first runtime parked", 1, emu.stats(next_calls=1, timeout=30)["nextRequests"])
        first.proc.kill()                # parked in `next`, gone without a word
        first.wait()
        second = Bootstrap(exe, tmp, emu.api)
        expect_eq("second runtime parked", 2, emu.stats(next_calls=2, timeout=30)["nextRequests"])
        rec = emu.result(emu.event({"for": "the live one"}), timeout=10)["final"]
        expect_eq("answer from the live runtime", '{"for": "the live one"}', rec["body"])
    finally:
        first.stop()
        if second:
            second.stop()
        emu.stop()


def case_valgrind_clean(exe, tmp):
    """The optimised build under memcheck: no invalid or uninitialised
    access on any path, and every block freed when a 500 ends the loop."""
    if not shutil.which("valgrind"):
        raise Skip("valgrind is not installed")
    emu = Emulator(tmp)
    log = os.path.join(tmp, "valgrind.log")
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=emu.api)
    env.pop("_X_AMZN_TRACE_ID", None)
    proc = subprocess.Popen(["valgrind", "-q", "--error-exitcode=9", "--leak-check=full",
                             "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
                             "--log-file=" + log, exe], env=env, stderr=subprocess.DEVNULL)
    try:
        for ev in ({"a": 1}, {"fail": "x"}, {"trace": True}, {"size": MAX_PAYLOAD + 1}, {"log": "hi"}):
            emu.result(emu.event(ev), timeout=120)
        emu.result(emu.event({"trace": True}, no_trace=1), timeout=120)
        # whether the 500 meets the `next` already parked or the one after
        # "last" is answered, the loop ends with status 1
        emu.fault(next500=1)
        emu.event({"last": 1})
        rc = proc.wait(120)
        with open(log) as f:
            report = f.read()
        expect_eq("exit status under valgrind (9 = memcheck errors)", 1, rc)
        expect_eq("valgrind report", "", report)
    finally:
        if proc.poll() is None:
            proc.kill()
        emu.stop()


SOLO = [case_init_failure, case_next_500_exits, case_api_gone_bounded_retries, case_api_dies_mid_run,
        case_json_log_format, case_debug_logs_payload_truncated, case_local_invoke, case_usage,
        case_emulator_flags_bad_error_report, case_killed_runtime_takes_no_event,
        case_event_over_the_limit_refused_by_the_runtime]
PLAIN = [case_memory_flat, case_valgrind_clean]


class Env:
    pass


def main():
    exe = sys.argv[1]
    plain = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else exe
    filt = sys.argv[3] if len(sys.argv) > 3 else ""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    tmp = tempfile.mkdtemp(prefix="it_lambda-")

    def run(name, fn, *args):
        if filt and filt not in name:
            return
        try:
            fn(*args)
            counts["passed"] += 1
            print("ok %s" % name)
        except Skip as e:
            counts["skipped"] += 1
            print("skip %s: %s" % (name, e))
        except Failure as e:
            counts["failed"] += 1
            print("FAIL %s: %s" % (name, e))
        except Exception as e:  # a crash in the case is a failure too, with its trace
            counts["failed"] += 1
            print("FAIL %s: expected no exception got %r" % (name, e))
            traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()

    env = Env()
    env.emu = Emulator(tmp)
    env.boot = Bootstrap(exe, tmp, env.emu.api)
    try:
        for fn in SHARED:
            run(fn.__name__[5:], fn, env)
    finally:
        env.boot.stop()
        env.emu.stop()
    for fn in SOLO:
        run(fn.__name__[5:], fn, exe, tmp)
    for fn in PLAIN:
        run(fn.__name__[5:], fn, plain, tmp)
    if counts["failed"]:
        print("# logs in %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed, %d skipped" % (counts["passed"], counts["failed"], counts["skipped"]))
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
