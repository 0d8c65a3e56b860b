#!/usr/bin/env python3
"""Cold start of packaged bootstraps against the floor (run by bench/coldstart.sh).

    bench/coldstart.py STARTS NAME=COMMAND [NAME=COMMAND ...]

COMMAND is the program, possibly behind a runner (`qemu-aarch64 -L DIR EXE`).

Spawn to first `GET /next`, as timestamped by tests/it/emulator.py (same
machine clock), for each program STARTS times, interleaved round by round
so that every program sees the same machine load. Each program runs in a
clean environment holding only what Lambda gives a provided.al2023 function
(dummy credentials included: Lambda always sets them). The first program is
the floor; the table gives each median and its ratio to the floor's.
"""
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "it"))
from it_lambda import Emulator  # noqa: E402


def lambda_env(api, task):
    return {"AWS_LAMBDA_RUNTIME_API": api, "LAMBDA_TASK_ROOT": task, "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "_HANDLER": "bootstrap", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023", "AWS_LAMBDA_FUNCTION_NAME": "coldstart",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "AWS_SESSION_TOKEN": "token", "TZ": ":UTC", "LANG": "en_US.UTF-8", "PATH": "/usr/bin:/bin"}


def one_start(emu, cmd):
    seen = emu.stats()["nextRequests"]
    argv = shlex.split(cmd)
    env = lambda_env(emu.api, os.path.dirname(os.path.abspath(argv[-1])))
    t0 = time.time()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    st = emu.stats(next_calls=seen + 1, timeout=30)   # blocks: no polling load
    p.terminate()
    p.wait(10)
    if st["nextRequests"] <= seen:
        raise SystemExit("no `next` from %s in 30 s" % cmd)
    return (st["lastNextAt"] - t0) * 1000


def main():
    starts = int(sys.argv[1])
    progs = [a.split("=", 1) for a in sys.argv[2:]]
    tmp = tempfile.mkdtemp(prefix="bench_coldstart-")
    emu = Emulator(tmp)
    times = {name: [] for name, _ in progs}
    try:
        for _, exe in progs:          # warm the page cache once
            one_start(emu, exe)
        for _ in range(starts):
            for name, exe in progs:
                times[name].append(one_start(emu, exe))
    finally:
        emu.stop()
    med = statistics.median
    floor = med(times[progs[0][0]])
    print("### cold start%s: spawn to first `next` against tests/it/emulator.py, %d interleaved starts each"
          % (os.environ.get("BENCH_COLDSTART_TITLE", ""), starts))
    print()
    print("| program | median (ms) | min | max | × floor |")
    print("|---|---:|---:|---:|---:|")
    for name, exe in progs:
        t = times[name]
        print("| %s (`%s`) | %.2f | %.2f | %.2f | %.2f |" % (name, exe, med(t), min(t), max(t), med(t) / floor))
    print()


if __name__ == "__main__":
    main()
