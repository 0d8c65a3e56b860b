#!/usr/bin/env python3
"""Lambda workers (AWS_LAMBDA_MAX_CONCURRENCY=N, as Lambda Managed Instances
set it): build/hello driven through tests/it/emulator.py with N workers.

    tests/it/it_concurrency.py HELLO_PLAIN HELLO_TSAN [NAME_FILTER]

HELLO_TSAN is the ThreadSanitizer build (make build/hello/bootstrap-tsan);
every case that runs it fails on any ThreadSanitizer report in its log.
Prints `ok CASE` / `FAIL CASE: expected ... got ...` and the summary line.
"""
import json
import os
import shutil
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from it_lambda import Bootstrap, Emulator, Failure, Skip, expect, expect_eq  # noqa: E402


def tsan_clean(boot):
    log = boot.log()
    expect("ThreadSanitizer" not in log, "ThreadSanitizer reports", "none",
           log[log.find("WARNING: ThreadSanitizer"):][:1500])


def case_four_outstanding_at_once(plain, tsan, tmp):
    emu = Emulator(tmp)
    boot = Bootstrap(tsan, tmp, emu.api, AWS_LAMBDA_MAX_CONCURRENCY="4")
    try:
        expect_eq("next calls parked", 4, emu.stats(next_calls=4, timeout=30)["nextRequests"])
        ids = emu.event({"trace": True, "sleep_ms": 1500}, count=4)
        t0 = time.time()
        docs = [json.loads(emu.result(i, timeout=30)["final"]["body"]) for i in ids]
        took = time.time() - t0
        stats = emu.stats()
        expect_eq("invocations outstanding at once (emulator's maxInFlight)", 4, stats["maxInFlight"])
        expect(took < 2 * 1.5, "4 invocations of 1.5 s answered within", "3 s", "%.2f s" % took)
        expect_eq("workers that answered", [0, 1, 2, 3], sorted(d["worker"] for d in docs))
        expect_eq("answers by their own request id", ids, [d["requestId"] for d in docs])
        expect_eq("protocol problems", 0, stats["problems"])
        tsan_clean(boot)
    finally:
        boot.stop()
        emu.stop()


def case_trace_and_tenant_per_invocation_never_in_environ(plain, tsan, tmp):
    emu = Emulator(tmp)
    boot = Bootstrap(tsan, tmp, emu.api, AWS_LAMBDA_MAX_CONCURRENCY="4")
    try:
        ids = [emu.event({"trace": True, "sleep_ms": 100}, request_id="req-%d" % i,
                         trace_id="Root=1-00000000-%024d;Sampled=1" % i, tenant_id="tenant-%d" % i)
               for i in range(16)]
        for n, rid in enumerate(ids):
            doc = json.loads(emu.result(rid, timeout=30)["final"]["body"])
            expect_eq("traceId of " + rid, "Root=1-00000000-%024d;Sampled=1" % n, doc["traceId"])
            expect_eq("tenantId of " + rid, "tenant-%d" % n, doc["tenantId"])
            expect_eq("$_X_AMZN_TRACE_ID with 4 workers (never set)", None, doc["envTraceId"])
        tsan_clean(boot)
    finally:
        boot.stop()
        emu.stop()


def case_log_lines_whole(plain, tsan, tmp):
    emu = Emulator(tmp)
    boot = Bootstrap(tsan, tmp, emu.api, AWS_LAMBDA_MAX_CONCURRENCY="4", AWS_LAMBDA_LOG_FORMAT="JSON")
    try:
        ids = [emu.event({"log": ("%d-" % i) * 500}) for i in range(200)]
        for rid in ids:
            emu.result(rid, timeout=60)
        boot.stop()
        lines = [ln for ln in boot.log().splitlines() if ln.strip()]
        bad = []
        for ln in lines:
            try:
                doc = json.loads(ln)
                if doc.get("message") == "hello" and doc["text"] != (doc["text"].split("-")[0] + "-") * 500:
                    bad.append(ln)
            except ValueError:
                bad.append(ln)
        hello = [ln for ln in lines if '"message":"hello"' in ln]
        expect_eq("hello log lines", 200, len(hello))
        expect_eq("lines that are not one whole JSON object", [], bad[:3])
        tsan_clean(boot)
    finally:
        boot.stop()
        emu.stop()


def case_thousand_answered_once_rss_flat(plain, tsan, tmp):
    emu = Emulator(tmp)
    boot = Bootstrap(plain, tmp, emu.api, AWS_LAMBDA_MAX_CONCURRENCY="4")
    try:
        payload = json.dumps({"records": [{"key": "photo-%d.jpg" % i} for i in range(40)]})
        first = emu.event(payload, count=100)
        emu.stats(answered=100, timeout=120)
        rss100 = boot.rss_kib()
        rest = emu.event(payload, count=900)
        emu.stats(answered=1000, timeout=300)
        rss1000 = boot.rss_kib()
        print("# N=4: VmRSS after 100 invocations %d KiB, after 1000 %d KiB" % (rss100, rss1000))
        twice = [i for i in first + rest if len(emu.result(i)["records"]) != 1]
        stats = emu.stats()
        expect_eq("invocations answered", 1000, stats["answered"])
        expect_eq("invocations answered more than once", [], twice[:5])
        expect_eq("protocol problems", 0, stats["problems"])
        expect(stats["maxInFlight"] >= 2, "invocations outstanding at once", ">= 2", stats["maxInFlight"])
        expect(rss1000 - rss100 < 1024, "VmRSS growth from 100 to 1000 invocations", "< 1024 KiB",
               "%d KiB (%d -> %d)" % (rss1000 - rss100, rss100, rss1000))
    finally:
        boot.stop()
        emu.stop()


def case_tsan_load_clean(plain, tsan, tmp):
    emu = Emulator(tmp)
    boot = Bootstrap(tsan, tmp, emu.api, AWS_LAMBDA_MAX_CONCURRENCY="4")
    try:
        kinds = [{"trace": True}, {"fail": "no"}, {"log": "x"}, {"size": 70000}, {"a": 1}]
        ids = []
        for k in kinds:
            ids += emu.event(k, count=200)
        emu.stats(answered=1000, timeout=110)
        stats = emu.stats()
        expect_eq("invocations answered under ThreadSanitizer", 1000, stats["answered"])
        expect_eq("protocol problems", 0, stats["problems"])
        boot.stop()
        tsan_clean(boot)
    finally:
        boot.stop()
        emu.stop()


def case_bad_variable_is_an_init_error(plain, tsan, tmp):
    for value in ("0", "four", "100000"):
        emu = Emulator(tmp)
        boot = Bootstrap(plain, tmp, emu.api, AWS_LAMBDA_MAX_CONCURRENCY=value)
        try:
            expect_eq("exit status with AWS_LAMBDA_MAX_CONCURRENCY=" + value, 1, boot.wait(20))
            status, rec = emu.call("GET", "/control/init-error?timeout=5")
            expect_eq("init error reported", 200, status)
            expect_eq("init error type", "Runtime.ConfigInvalid", rec["errorTypeHeader"])
            expect_eq("next calls", 0, emu.stats()["nextRequests"])
        finally:
            boot.stop()
            emu.stop()


def case_unset_is_one_worker_with_environ(plain, tsan, tmp):
    emu = Emulator(tmp)
    boot = Bootstrap(tsan, tmp, emu.api)
    try:
        ids = emu.event({"trace": True, "sleep_ms": 300}, count=3)
        docs = [json.loads(emu.result(i, timeout=30)["final"]["body"]) for i in ids]
        expect_eq("invocations outstanding at once", 1, emu.stats()["maxInFlight"])
        expect_eq("one worker", [0, 0, 0], [d["worker"] for d in docs])
        expect_eq("$_X_AMZN_TRACE_ID with one worker", docs[0]["traceId"], docs[0]["envTraceId"])
        tsan_clean(boot)
    finally:
        boot.stop()
        emu.stop()


def case_fatal_error_stops_every_worker(plain, tsan, tmp):
    """A 500 to one worker's `next` ends the process (status 1) within
    seconds: the workers parked in `next` give up, nothing leaks or races
    (ThreadSanitizer build, then the ASan+LSan one when present)."""
    san = os.path.join(os.path.dirname(plain), "bootstrap-san")
    for exe in [tsan] + ([san] if os.path.exists(san) else []):
        emu = Emulator(tmp)
        boot = Bootstrap(exe, tmp, emu.api, AWS_LAMBDA_MAX_CONCURRENCY="4")
        try:
            emu.stats(next_calls=4, timeout=30)
            emu.fault(next500=1)
            emu.result(emu.event({"a": 1}), timeout=30)
            t0 = time.time()
            rc = boot.wait(30)
            expect_eq("exit status of %s after a 500" % os.path.basename(exe), 1, rc)
            expect(time.time() - t0 < 10, "exit after the 500 within", "10 s", "%.1f s" % (time.time() - t0))
            tsan_clean(boot)
            expect("LeakSanitizer" not in boot.log(), "leaks", "none", boot.log()[-1500:])
        finally:
            boot.stop()
            emu.stop()


CASES = [case_four_outstanding_at_once, case_fatal_error_stops_every_worker, case_trace_and_tenant_per_invocation_never_in_environ,
         case_log_lines_whole, case_thousand_answered_once_rss_flat, case_tsan_load_clean,
         case_bad_variable_is_an_init_error, case_unset_is_one_worker_with_environ]


def main():
    plain, tsan = sys.argv[1], sys.argv[2]
    filt = sys.argv[3] if len(sys.argv) > 3 else ""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    tmp = tempfile.mkdtemp(prefix="it_concurrency-")
    for fn in CASES:
        name = fn.__name__[5:]
        if filt and filt not in name:
            continue
        t0 = time.time()
        try:
            fn(plain, tsan, tmp)
            counts["passed"] += 1
            print("ok %s (%.1f s)" % (name, time.time() - t0))
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
    if counts["failed"]:
        print("# logs in %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed, %d skipped" % (counts["passed"], counts["failed"], counts["skipped"]))
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
