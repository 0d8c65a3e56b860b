#!/usr/bin/env python3
"""End-to-end benchmark of the packaged functions (run by bench/pipeline.sh).

    bench/pipeline_bench.py BUILD_DIR

Everything runs as deployed: build/NAME/function.zip unzipped into a fresh
directory, the bootstrap started with only the variables Lambda sets (no
LD_LIBRARY_PATH tricks beyond Lambda's own), against tests/it/emulator.py on
127.0.0.1, with S3 served by radosgw (tests/it/servers.sh; the SPIM_TEST_S3_*
variables of build/servers.env must be set).

1. zip sizes of every build/*/function.zip
2. cold start: spawn of the packaged bootstrap to its first `next`, as
   timestamped by the emulator (same clock); median of STARTS runs, for the
   imager, presign and hello packages, and for build/imager/bootstrap (system
   libraries) as a reference
3. per image: 2, 12 and 20 MP photo-like JPEGs (bench/pipeline_tool) in
   radosgw; for each size a fresh imager process gets one warm-up event and
   REPEATS measured ObjectCreated:Put events, each after the stamped copy
   was deleted (so every event does the whole job: HEAD, GET, stamp, PUT,
   HEAD; an event for a key whose copy is current costs only the HEADs):
   milliseconds from posting the event to the answer, the imager's own
   `ms` and `path` (its log line), and the process's peak RSS (VmHWM) after
   the runs; once with the default SPARTA_JPEG_MODE (auto: the compressed
   domain) and once with recode, in the same run, for the ratio.
   AWS_LAMBDA_FUNCTION_MEMORY_SIZE is MEMORY (default 128, the template's
   default), which sets the pixel budget.

4. workers (AWS_LAMBDA_MAX_CONCURRENCY, Lambda Managed Instances): events
   per second through the imager at N = 1, 2, 4, 8 workers on 12 MP photos,
   S3 reached through bench/delayproxy.c holding every request LATENCY ms
   (a stand-in for the network: radosgw on loopback answers in ~1 ms; it
   relays bytes as they come, so it costs the machine little CPU, as the
   network costs the function none); per
   N a fresh imager, one warm-up event, then EVENTS events for distinct
   unstamped keys posted at once, timed from the first post to the last
   answer; the median of WORKER_RUNS such runs, with the CPU each process
   (the imager; radosgw with its OSD and monitor; the proxy; the emulator)
   spent per event over the timed part (/proc/PID/stat, all threads), and
   how many of the machine's cores they used together (their CPU seconds
   over the wall seconds): on a machine shared with other work, N workers
   can only go as fast as the share of the cores they get.

Environment: BENCH_PIPELINE_STARTS (15), BENCH_PIPELINE_REPEATS (5),
BENCH_PIPELINE_MEMORY (128), BENCH_PIPELINE_SIZES ("2,12,20"),
BENCH_PIPELINE_WORKERS ("1,2,4,8"; "" skips section 4),
BENCH_PIPELINE_LATENCY_MS (20), BENCH_PIPELINE_EVENTS (24),
BENCH_PIPELINE_WORKER_RUNS (3), BENCH_PIPELINE_ONLY ("workers": section 4 alone),
BENCH_PIPELINE_PROXY ("delayproxy"; "faultproxy": tests/it/faultproxy.py instead).
Prints markdown tables of medians.
"""
import glob
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR = os.path.join(ROOT, "tests", "it", "emulator.py")
DIMENSIONS = {2: (1732, 1155), 12: (4000, 3000), 20: (5472, 3648)}


class Emulator:
    def __init__(self, tmp):
        self.port_file = os.path.join(tmp, "emulator-%d.port" % time.time_ns())
        self.log = open(os.path.join(tmp, "emulator.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, EMULATOR, "--port-file", self.port_file,
                                      "--timeout-ms", "120000"], stdout=self.log, stderr=self.log)
        limit = time.time() + 20
        while not os.path.exists(self.port_file) or not open(self.port_file).read().strip():
            if self.proc.poll() is not None or time.time() > limit:
                raise SystemExit("pipeline bench: the emulator did not start")
            time.sleep(0.02)
        self.port = int(open(self.port_file).read())
        self.api = "127.0.0.1:%d" % self.port

    def call(self, method, path, body=None, timeout=200):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body)
            r = conn.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if data else None)
        finally:
            conn.close()

    def invoke(self, payload):
        """Post one event, wait for its answer: (record, milliseconds)."""
        t0 = time.perf_counter()
        status, doc = self.call("POST", "/control/event", json.dumps(payload).encode())
        if status != 200:
            raise SystemExit("pipeline bench: emulator refused the event (%d)" % status)
        rid = doc["requestIds"][0]
        status, doc = self.call("GET", "/control/result/%s?timeout=180" % rid)
        t1 = time.perf_counter()
        if status != 200:
            raise SystemExit("pipeline bench: no answer for " + rid)
        return doc["records"][-1], (t1 - t0) * 1000

    def stats(self):
        return self.call("GET", "/control/stats")[1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)


def lambda_env(api, task, extra):
    env = {"AWS_LAMBDA_RUNTIME_API": api, "LAMBDA_TASK_ROOT": task, "LAMBDA_RUNTIME_DIR": "/var/runtime",
           "_HANDLER": "bootstrap", "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
           "AWS_LAMBDA_FUNCTION_NAME": "pipeline-bench", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
           "AWS_REGION": os.environ.get("SPIM_TEST_REGION", "us-east-1"),
           "AWS_ACCESS_KEY_ID": os.environ["SPIM_TEST_ACCESS_KEY"],
           "AWS_SECRET_ACCESS_KEY": os.environ["SPIM_TEST_SECRET_KEY"],
           "AWS_ENDPOINT_URL_S3": os.environ["SPIM_TEST_S3_ENDPOINT"],
           "TZ": ":UTC", "LANG": "en_US.UTF-8", "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
           "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:"
                              "%s:%s/lib:/opt/lib" % (task, task)}
    env.update(extra)
    return env


def spawn(exe, api, extra, log):
    task = os.path.dirname(exe)
    return subprocess.Popen([exe], env=lambda_env(api, task, extra), stdout=subprocess.DEVNULL,
                            stderr=open(log, "ab"))


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def unpack(zip_path, dest):
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    subprocess.run(["unzip", "-q", zip_path, "-d", dest], check=True)
    return os.path.join(dest, "bootstrap")


def cold_starts(exe, tmp, n, extra):
    emu = Emulator(tmp)
    out = []
    try:
        for _ in range(n):
            seen = emu.stats()["nextRequests"]
            t0 = time.time()
            proc = spawn(exe, emu.api, extra, os.path.join(tmp, "cold.log"))
            while True:
                st = emu.stats()
                if st["nextRequests"] > seen:
                    break
                if proc.poll() is not None:
                    raise SystemExit("pipeline bench: %s exited during a cold start (see %s/cold.log)" % (exe, tmp))
                time.sleep(0.0005)
            out.append((st["lastNextAt"] - t0) * 1000)
            stop(proc)
    finally:
        emu.stop()
    return out


def s3_cli(build, *args):
    env = dict(os.environ, AWS_ENDPOINT_URL_S3=os.environ["SPIM_TEST_S3_ENDPOINT"],
               AWS_ACCESS_KEY_ID=os.environ["SPIM_TEST_ACCESS_KEY"],
               AWS_SECRET_ACCESS_KEY=os.environ["SPIM_TEST_SECRET_KEY"],
               AWS_REGION=os.environ.get("SPIM_TEST_REGION", "us-east-1"))
    subprocess.run([os.path.join(build, "s3")] + list(args), env=env, check=True,
                   stdout=subprocess.DEVNULL)


def s3_event(bucket, key, size):
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-05-01T12:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": "arn:aws:s3:::" + bucket},
               "object": {"key": urllib.parse.quote_plus(key, safe="/"), "size": size}}}]}


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def log_split(log_path, count):
    """(ms, path) of the last `count` stamped lines of the imager's log."""
    with open(log_path, encoding="utf-8", errors="replace") as f:
        lines = [l for l in f if "stamped" in l and re.search(r"\bms=\d+", l)]
    out = []
    for l in lines[-count:]:
        ms = re.search(r"\bms=(\d+)", l)
        path = re.search(r"\bpath=(\w+)", l)
        out.append((int(ms.group(1)), path.group(1) if path else "?"))
    return out


def per_image(build, exe, tmp, sizes, repeats, memory, mode):
    tool = os.path.join(build, "bench", "pipeline_tool")
    bucket = "pipeline-bench-%s-%d" % (mode, int(time.time()))
    s3_cli(build, "mb", "s3://" + bucket)
    rows = []

    def drop_copy():
        try:
            s3_cli(build, "rm", "s3://%s/xformed_%s" % (bucket, key))
        except subprocess.CalledProcessError:
            pass

    for mp in sizes:
        w, h = DIMENSIONS[mp]
        path = os.path.join(tmp, "photo-%dmp.jpg" % mp)
        if not os.path.exists(path):
            subprocess.run([tool, "jpeg", str(w), str(h), "90", path], check=True)
        size = os.path.getsize(path)
        key = "bench/photo %d MP.jpg" % mp
        s3_cli(build, "put", "s3://%s/%s" % (bucket, key), path, "--content-type", "image/jpeg")
        emu = Emulator(tmp)
        log = os.path.join(tmp, "imager-%s-%d.log" % (mode, mp))
        proc = spawn(exe, emu.api, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory), "SPARTA_JPEG_MODE": mode}, log)
        try:
            rec, _ = emu.invoke(s3_event(bucket, key, size))          # warm-up
            body = json.loads(rec.get("body") or "{}")
            if rec["kind"] != "response" or body.get("stamped") != 1:
                why = body.get("records", [{}])[0].get("reason") if isinstance(body, dict) else rec.get("body")
                rows.append((mp, w, h, size, None, None, None, None, "not stamped: %s" % (why or rec.get("body"))))
                continue
            times = []
            for _ in range(repeats):
                drop_copy()
                rec, ms = emu.invoke(s3_event(bucket, key, size))
                body = json.loads(rec.get("body") or "{}") if rec["kind"] == "response" else {}
                if body.get("stamped") != 1:
                    raise SystemExit("pipeline bench: the imager did not stamp: " + rec.get("body", ""))
                times.append(ms)
            hwm = vm_hwm_kib(proc.pid)
            split = log_split(log, repeats)
            own = statistics.median(m for m, _ in split) if split else float("nan")
            paths = "/".join(sorted(set(p for _, p in split))) or "?"
            rows.append((mp, w, h, size, statistics.median(times), (own, paths), hwm, min(times), ""))
        finally:
            stop(proc)
            emu.stop()
        s3_cli(build, "rm", "s3://%s/%s" % (bucket, key))
        drop_copy()
    return rows


class Proxy:
    """A latency stand-in in front of radosgw, every request held `delay_ms`: build/bench/delayproxy
    (C, relays bytes as they come), or tests/it/faultproxy.py with BENCH_PIPELINE_PROXY=faultproxy
    (Python, reads every body whole: costs the machine more CPU, for comparison)."""

    def __init__(self, build, tmp, delay_ms):
        if os.environ.get("BENCH_PIPELINE_PROXY", "delayproxy") == "faultproxy":
            self.name = "tests/it/faultproxy.py"
            cmd = [sys.executable, os.path.join(ROOT, "tests", "it", "faultproxy.py")]
        else:
            self.name = "bench/delayproxy.c"
            cmd = [os.path.join(build, "bench", "delayproxy")]
        self.proc = subprocess.Popen(cmd + ["--upstream", os.environ["SPIM_TEST_S3_ENDPOINT"], "--port", "0",
                                            "--delay-ms", "%d" % delay_ms], stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(tmp, "proxy.log"), "ab"))
        self.url = "http://127.0.0.1:%d" % int(self.proc.stdout.readline())

    def stop(self):
        stop(self.proc)


def cpu_seconds(pid):
    """user + system CPU seconds of a live process (all its threads), 0 if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def radosgw_pids():
    """The radosgw, OSD and monitor of tests/it/servers.sh (they serve every S3 request)."""
    run = os.path.join(os.environ.get("SPIM_BUILD", os.path.join(ROOT, "build")), "radosgw", "run")
    pids = []
    for name in ("rgw", "osd", "mon"):
        try:
            pids.append(int(open(os.path.join(run, name + ".pid")).read()))
        except (OSError, ValueError):
            pass
    return pids


def cpu_snapshot(groups):
    return {name: sum(cpu_seconds(p) for p in pids) for name, pids in groups.items()}


def workers_run(build, exe, tmp, proxy, bucket, photo, n, events, run):
    """(seconds, most outstanding, {process: CPU seconds}) for `events` events at n
    workers (after one warm-up event)."""
    keys = ["w%d/r%d/photo-%d.jpg" % (n, run, i) for i in range(events + 1)]
    for k in keys:
        s3_cli(build, "put", "s3://%s/%s" % (bucket, k), photo, "--content-type", "image/jpeg")
    emu = Emulator(tmp)
    log = os.path.join(tmp, "imager-workers-%d.log" % n)
    proc = spawn(exe, emu.api, {"AWS_LAMBDA_MAX_CONCURRENCY": str(n), "AWS_ENDPOINT_URL_S3": proxy.url,
                                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"}, log)
    try:
        rec, _ = emu.invoke(s3_event(bucket, keys[0], os.path.getsize(photo)))
        if rec["kind"] != "response" or json.loads(rec["body"]).get("stamped") != 1:
            raise SystemExit("pipeline bench: warm-up not stamped: %s" % rec.get("body"))
        groups = {"imager": [proc.pid], "radosgw": radosgw_pids(), "proxy": [proxy.proc.pid],
                  "emulator": [emu.proc.pid]}
        cpu0 = cpu_snapshot(groups)
        t0 = time.perf_counter()
        ids = []
        for k in keys[1:]:
            status, doc = emu.call("POST", "/control/event", json.dumps(s3_event(bucket, k, 1)).encode())
            ids.append(doc["requestIds"][0])
        for rid in ids:
            status, doc = emu.call("GET", "/control/result/%s?timeout=300" % rid)
            rec = doc["records"][-1]
            if status != 200 or rec["kind"] != "response" or json.loads(rec["body"]).get("stamped") != 1:
                raise SystemExit("pipeline bench: not stamped at N=%d: %s" % (n, rec.get("body")))
        took = time.perf_counter() - t0
        cpu1 = cpu_snapshot(groups)
        in_flight = emu.stats()["maxInFlight"]
    finally:
        stop(proc)
        emu.stop()
        for k in keys:   # radosgw's memstore holds 2 GB: a full README run would fill it
            for name in (k, "xformed_" + k):
                try:
                    s3_cli(build, "rm", "s3://%s/%s" % (bucket, name))
                except subprocess.CalledProcessError:
                    pass
    return took, in_flight, {k: cpu1[k] - cpu0[k] for k in cpu0}


def workers(build, exe, tmp):
    counts = [int(x) for x in os.environ.get("BENCH_PIPELINE_WORKERS", "1,2,4,8").split(",") if x]
    latency = int(os.environ.get("BENCH_PIPELINE_LATENCY_MS", "20"))
    events = int(os.environ.get("BENCH_PIPELINE_EVENTS", "24"))
    runs = int(os.environ.get("BENCH_PIPELINE_WORKER_RUNS", "3"))
    if not counts:
        return
    photo = os.path.join(tmp, "photo-12mp.jpg")
    if not os.path.exists(photo):
        subprocess.run([os.path.join(build, "bench", "pipeline_tool"), "jpeg", "4000", "3000", "90", photo],
                       check=True)
    bucket = "pipeline-workers-%d" % int(time.time())
    s3_cli(build, "mb", "s3://" + bucket)
    proxy = Proxy(build, tmp, latency)
    print("\n### workers: events/s at AWS_LAMBDA_MAX_CONCURRENCY=N, 12 MP JPEGs, %.0f ms added to every S3 "
          "request by %s (median of %d runs of %d events; load average %.1f at the start)\n"
          % (latency, proxy.name, runs, events, os.getloadavg()[0]))
    procs = ("imager", "radosgw", "proxy", "emulator")
    print("| workers | events/s | seconds for %d events | most outstanding | vs N=1 | CPU ms per event: %s "
          "| cores these used | load |" % (events, " / ".join(procs)))
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = None
    try:
        for n in counts:
            got = [workers_run(build, exe, tmp, proxy, bucket, photo, n, events, r) for r in range(runs)]
            secs = statistics.median(t for t, _, _ in got)
            rate = events / secs
            base = base or rate
            cpu = " / ".join("%.0f" % (statistics.median(c[p] for _, _, c in got) * 1000 / events)
                             for p in procs)
            cores = statistics.median(sum(c.values()) / t for t, _, c in got)
            print("| %d | %.2f | %.2f | %d | %.2fx | %s | %.2f | %.1f |" %
                  (n, rate, secs, max(m for _, m, _ in got), rate / base, cpu, cores, os.getloadavg()[0]))
            sys.stdout.flush()
    finally:
        proxy.stop()


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
    starts = int(os.environ.get("BENCH_PIPELINE_STARTS", "15"))
    repeats = int(os.environ.get("BENCH_PIPELINE_REPEATS", "5"))
    memory = int(os.environ.get("BENCH_PIPELINE_MEMORY", "128"))
    sizes = [int(s) for s in os.environ.get("BENCH_PIPELINE_SIZES", "2,12,20").split(",") if s]
    tmp = tempfile.mkdtemp(prefix="pipeline-bench-")
    if os.environ.get("BENCH_PIPELINE_ONLY") == "workers":
        exe = os.path.join(build, "imager", "function.zip")
        exe = unpack(exe, os.path.join(tmp, "task-imager")) if os.path.exists(exe) else \
            os.path.join(build, "imager", "bootstrap")
        try:
            workers(build, exe, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        print("## pipeline: packaged functions (build/*/function.zip) end to end\n")
        print("| package | zip bytes | zip MB | files | unpacked MB |")
        print("|---|---:|---:|---:|---:|")
        tasks = {}
        for z in sorted(glob.glob(os.path.join(build, "*", "function.zip"))):
            name = os.path.basename(os.path.dirname(z))
            exe = unpack(z, os.path.join(tmp, "task-" + name))
            tasks[name] = exe
            files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.dirname(exe)) for f in fs]
            unpacked = sum(os.path.getsize(f) for f in files)
            print("| %s | %d | %.2f | %d | %.1f |" % (name, os.path.getsize(z), os.path.getsize(z) / 1e6,
                                                      len(files), unpacked / 1e6))

        print("\n### cold start: spawn to first `next` (median of %d, ms)\n" % starts)
        print("| bootstrap | median | min | max |")
        print("|---|---:|---:|---:|")
        candidates = [("%s (packaged)" % n, tasks[n]) for n in ("imager", "presign", "hello") if n in tasks]
        if os.path.exists(os.path.join(build, "imager", "bootstrap")):
            candidates.append(("imager (build/imager/bootstrap, system libs, -g)", os.path.join(build, "imager", "bootstrap")))
        extra = {"SPARTA_BUCKET": "pipeline-bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
        for label, exe in candidates:
            t = cold_starts(exe, tmp, starts, extra)
            print("| %s | %.1f | %.1f | %.1f |" % (label, statistics.median(t), min(t), max(t)))

        if "imager" not in tasks:
            print("\n(no build/imager/function.zip: per-image rows skipped)")
            return
        print("\n### per image: radosgw HEAD, GET -> stamp -> PUT, HEAD through the packaged imager "
              "(AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%d, median of %d after 1 warm-up)\n" % (memory, repeats))
        print("| photo | pixels | JPEG bytes | SPARTA_JPEG_MODE | ms per event | min ms | imager's ms (log) | path | peak RSS MB (VmHWM) |")
        print("|---|---:|---:|---|---:|---:|---:|---|---:|")
        medians = {}
        for mode in ("auto", "recode"):
            for mp, w, h, size, med, own, hwm, mn, note in per_image(build, tasks["imager"], tmp, sizes, repeats,
                                                                    memory, mode):
                if med is None:
                    print("| %d MP | %dx%d | %d | %s | %s | | | | |" % (mp, w, h, size, mode, note))
                    continue
                medians[(mp, mode)] = med
                print("| %d MP | %dx%d | %d | %s | %.0f | %.0f | %.0f | %s | %.1f |" %
                      (mp, w, h, size, mode, med, mn, own[0], own[1], hwm / 1024))
        for mp in sizes:
            if (mp, "auto") in medians and (mp, "recode") in medians and medians[(mp, "auto")] > 0:
                print("\n%d MP: auto %.1fx faster than recode per event" %
                      (mp, medians[(mp, "recode")] / medians[(mp, "auto")]), end="")
        print()
        workers(build, tasks["imager"], tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
