#!/usr/bin/env python3
"""Benchmark of the lambda section (run by bench/lambda.sh).

    bench/lambda.py BOOTSTRAP [STARTS] [ROUNDS] [INVOCATIONS]

1. Cold start: time from spawning BOOTSTRAP to its first `next` request,
   as timestamped by tests/it/emulator.py (same machine clock), STARTS times.
2. Throughput: ROUNDS rounds of INVOCATIONS back-to-back invocations of
   the echo function against a fresh emulator, after 100 warm-up ones,
   with the CPU time each process spent (from /proc/PID/stat), which shows
   which side is the bottleneck.
Prints a markdown table of medians.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "it"))
from it_lambda import Bootstrap, Emulator  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
EVENT = ('{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"photos"},'
         '"object":{"key":"uploads/cat.jpg","size":48213}}}]}')


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK      # utime + stime


def cold_starts(exe, tmp, n):
    emu = Emulator(tmp)
    out = []
    try:
        for _ in range(n):
            seen = emu.stats()["nextRequests"]
            t0 = time.time()
            boot = Bootstrap(exe, tmp, emu.api)
            st = emu.stats(next_calls=seen + 1, timeout=30)   # blocks: no polling load
            if st["nextRequests"] <= seen:
                raise SystemExit("no `next` from the bootstrap in 30 s: see " + boot.log_path)
            out.append((st["lastNextAt"] - t0) * 1000)
            boot.stop()
    finally:
        emu.stop()
    return out


def spawn_reference(cmd, n):
    """Spawn-and-exit times of cmd: /bin/true is Python's fork/exec alone;
    `bootstrap --help` adds loading the shared libraries (it exits before
    curl_global_init)."""
    out = []
    for _ in range(n):
        t0 = time.time()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out.append((time.time() - t0) * 1000)
    return out


def throughput_round(exe, tmp, n):
    emu = Emulator(tmp)
    boot = Bootstrap(exe, tmp, emu.api)
    try:
        emu.event(EVENT, count=100)
        emu.stats(answered=100, timeout=120)
        cpu_b0, cpu_e0 = cpu_seconds(boot.proc.pid), cpu_seconds(emu.proc.pid)
        t0 = time.time()
        emu.event(EVENT, count=n)
        st = emu.stats(answered=100 + n, timeout=600)
        t1 = time.time()
        if st["answered"] < 100 + n:
            raise SystemExit("only %d of %d invocations answered" % (st["answered"], 100 + n))
        cpu_b = cpu_seconds(boot.proc.pid) - cpu_b0
        cpu_e = cpu_seconds(emu.proc.pid) - cpu_e0
        return n / (t1 - t0), cpu_b / n * 1e6, cpu_e / n * 1e6
    finally:
        boot.stop()
        emu.stop()


def main():
    exe = sys.argv[1]
    starts = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
    tmp = tempfile.mkdtemp(prefix="bench_lambda-")
    cold = cold_starts(exe, tmp, starts)
    ref = spawn_reference(["/bin/true"], starts)
    ref_help = spawn_reference([exe, "--help"], starts)
    runs = [throughput_round(exe, tmp, n) for _ in range(rounds)]
    rate = [r[0] for r in runs]
    cpu_b = [r[1] for r in runs]
    cpu_e = [r[2] for r in runs]
    shutil.rmtree(tmp, ignore_errors=True)
    med = statistics.median
    print("### lambda runtime: %s against tests/it/emulator.py" % exe)
    print()
    print("| measure | median | min | max | runs |")
    print("|---|---:|---:|---:|---:|")
    print("| spawn to first `next` (ms) | %.2f | %.2f | %.2f | %d |" % (med(cold), min(cold), max(cold), starts))
    print("| reference: spawn and exit of /bin/true (ms) | %.2f | %.2f | %.2f | %d |"
          % (med(ref), min(ref), max(ref), starts))
    print("| reference: `bootstrap --help`, loading only (ms) | %.2f | %.2f | %.2f | %d |"
          % (med(ref_help), min(ref_help), max(ref_help), starts))
    print("| invocations/s (echo, %d per round) | %.0f | %.0f | %.0f | %d |"
          % (n, med(rate), min(rate), max(rate), rounds))
    print("| bootstrap CPU per invocation (µs) | %.0f | %.0f | %.0f | %d |"
          % (med(cpu_b), min(cpu_b), max(cpu_b), rounds))
    print("| emulator CPU per invocation (µs) | %.0f | %.0f | %.0f | %d |"
          % (med(cpu_e), min(cpu_e), max(cpu_e), rounds))
    print()
    ceiling_e = 1e6 / med(cpu_e) if med(cpu_e) else float("inf")
    ceiling_b = 1e6 / med(cpu_b) if med(cpu_b) else float("inf")
    print("The Python emulator (one GIL, so at most one core) spends %.0f µs of CPU per invocation:"
          % med(cpu_e))
    print("its ceiling is about %.0f invocations/s, and it %s the bottleneck here; the bootstrap alone"
          % (ceiling_e, "is" if med(cpu_e) > med(cpu_b) else "is not"))
    print("(%.0f µs of CPU per invocation) would allow about %.0f invocations/s per core."
          % (med(cpu_b), ceiling_b))
    print("Cold start includes fork/exec from Python; the CPU times come from /proc/PID/stat "
          "(%d ticks/s), so they are coarse." % TICK)


if __name__ == "__main__":
    main()
