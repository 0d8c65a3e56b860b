#!/usr/bin/env python3
"""Race harness for the imager: several bootstraps, each behind its own
tests/it/emulator.py, handle S3 events while the originals are put, overwritten
and deleted under them, against the real radosgw. Deliveries are duplicated,
delayed, reordered, batched (direct or wrapped in SQS) and retried when an
invocation fails (one instance reaches S3 through tests/it/faultproxy.py, which
fails some of its requests with 503). Once everything is delivered, every key
must have converged:

    the stamped copy exists exactly when the original does,
    its x-amz-meta-sparta-source-etag is the original's ETag,
    and it was made from the original's current bytes (pixel diff: only the
    stamp's corner differs; every version has its own colour).

    tests/it/it_race.py IMAGER_BOOTSTRAP          SEEDS=N (default 16) SEED=S[,S...] (replay those)

A seed fixes the plan (operations, delays, duplicates, batching, faults);
thread timing can still differ from run to run.

Needs the servers.env variables (tests/run.sh exports them). Prints one line
per seed, "N divergent keys", and "N passed, N failed".
"""
import heapq
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from it_lambda import Bootstrap, Emulator  # noqa: E402
from it_imager import FaultProxy, aws_env, new_bucket, run, s3_head, s3_record, S3, IMGCHECK, PREFIX  # noqa: E402

# it_race.sh runs the race with SPARTA_RULES on: its rule for race/ writes the copies under
# RACE_OUTPUT_PREFIX, which the convergence check then reads.
PREFIX = os.environ.get("RACE_OUTPUT_PREFIX", PREFIX)
INSTANCES = 3
KEYS = 6


def png(width, height, rgb):
    """A solid-colour RGB PNG (stdlib only)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)
    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


class Race:
    """One seeded schedule."""

    def __init__(self, seed, bucket, instances, tmp):
        self.rng = random.Random(seed)
        self.seed, self.bucket, self.instances, self.tmp = seed, bucket, instances, tmp
        self.keys = ["race/s%d/k%d.png" % (seed, i) for i in range(KEYS)]
        self.heap, self.cond = [], threading.Condition()
        self.pending = 0          # deliveries queued or in flight
        self.ops_done = False
        self.deliveries = self.retries = self.failed_invocations = 0
        self.tick = 0

    def schedule(self, due, records):
        with self.cond:
            self.tick += 1
            heapq.heappush(self.heap, (due, self.tick, records))
            self.pending += 1
            self.cond.notify_all()

    def operate(self):
        """Puts, overwrites and deletes, each followed by its event (0-300 ms late)
        and half the time by a duplicate (100-1000 ms late)."""
        plan = []
        for k in self.keys:
            plan += [k] * self.rng.randint(2, 4)
        self.rng.shuffle(plan)
        seen = set()
        for n, k in enumerate(plan):
            if k in seen and self.rng.random() < 0.4:
                run([S3, "rm", "s3://%s/%s" % (self.bucket, k)])
                name = "ObjectRemoved:Delete"
            else:
                path = os.path.join(self.tmp, "v%d-%d.png" % (self.seed, n))
                with open(path, "wb") as f:
                    f.write(png(64, 48, (self.rng.randrange(256), self.rng.randrange(256), n * 7 % 256)))
                run([S3, "put", "s3://%s/%s" % (self.bucket, k), path, "--content-type", "image/png"])
                name = "ObjectCreated:Put"
            seen.add(k)
            self.schedule(time.time() + self.rng.uniform(0, 0.3), [s3_record(self.bucket, k, name)])
            if self.rng.random() < 0.5:    # a duplicate, possibly after newer events of the key
                self.schedule(time.time() + self.rng.uniform(0.1, 1.0), [s3_record(self.bucket, k, name)])
            if self.rng.random() < 0.15:   # the faulty instance's next S3 requests fail for good
                self.instances[-1][2].control("set?mode=slowdown&count=3")
            time.sleep(self.rng.uniform(0, 0.04))
        with self.cond:
            self.ops_done = True
            self.cond.notify_all()

    def take(self):
        """Up to 3 due deliveries as one invocation, or None when all is done."""
        with self.cond:
            while True:
                if not self.heap and self.pending == 0 and self.ops_done:
                    return None
                now = time.time()
                if self.heap and self.heap[0][0] <= now:
                    batch = []
                    while self.heap and self.heap[0][0] <= now and len(batch) < 3:
                        batch.append(heapq.heappop(self.heap)[2])
                    return batch
                self.cond.wait(min(0.05, self.heap[0][0] - now) if self.heap else 0.05)

    def deliver(self, emu):
        while True:
            batch = self.take()
            if batch is None:
                return
            sqs = self.rng.random() < 0.5
            if sqs:
                event = {"Records": [{"messageId": "m%d" % i, "eventSource": "aws:sqs", "receiptHandle": "r",
                                      "body": json.dumps({"Records": recs}), "attributes": {}, "messageAttributes": {},
                                      "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:q", "awsRegion": "us-east-1"}
                                     for i, recs in enumerate(batch)]}
            else:
                event = {"Records": [r for recs in batch for r in recs]}
            rec = emu.result(emu.event(event, timeout_ms=60000), timeout=120)["final"]
            again = []
            if rec["kind"] != "response":
                again = batch
            elif sqs:
                again = [batch[int(f["itemIdentifier"][1:])] for f in json.loads(rec["body"]).get("batchItemFailures", [])]
            with self.cond:
                self.deliveries += 1
                self.failed_invocations += bool(again)
                self.retries += len(again)
            for recs in again:     # Lambda (or SQS) delivers a failed one again, a little later
                self.schedule(time.time() + self.rng.uniform(0.05, 0.3), recs)
            with self.cond:
                self.pending -= len(batch)
                self.cond.notify_all()

    def divergent(self):
        """Keys whose copy does not match the original, with why."""
        bad = []
        for k in self.keys:
            orig, copy = s3_head(self.bucket, k), s3_head(self.bucket, PREFIX + k)
            if orig is None or copy is None:
                if (orig is None) != (copy is None):
                    bad.append("%s: original %s, copy %s" % (k, "absent" if orig is None else "exists",
                                                             "absent" if copy is None else "exists"))
                continue
            if copy.get("meta-sparta-source-etag") != orig["etag"].strip('"'):
                bad.append("%s: copy's source etag %s, original's %s" % (k, copy.get("meta-sparta-source-etag"),
                                                                          orig["etag"]))
                continue
            a, b = os.path.join(self.tmp, "orig.png"), os.path.join(self.tmp, "copy.png")
            run([S3, "get", "s3://%s/%s" % (self.bucket, k), a])
            run([S3, "get", "s3://%s/%s%s" % (self.bucket, PREFIX, k), b])
            d = dict(w.split("=", 1) for w in run([IMGCHECK, "diff", a, b, "0"]).stdout.decode().split())
            x0, y0 = (int(v) for v in d["bbox"].split(",")[:2])
            if int(d["changed"]) == 0 or x0 < 32 or y0 < 24:
                bad.append("%s: copy not made from the current bytes (diff %s)" % (k, d))
        return bad

    def play(self):
        workers = [threading.Thread(target=self.deliver, args=(inst[0],)) for inst in self.instances]
        for w in workers:
            w.start()
        self.operate()
        for w in workers:
            w.join()
        self.instances[-1][2].control("reset")
        return self.divergent()


def main():
    if len(sys.argv) < 2:
        print("usage: it_race.py IMAGER_BOOTSTRAP")
        return 2
    imager = sys.argv[1]
    seeds = [int(x) for x in os.environ["SEED"].split(",")] if os.environ.get("SEED") else \
        [random.randrange(1 << 30) for _ in range(int(os.environ.get("SEEDS", "16")))]
    tmp = tempfile.mkdtemp(prefix="race-")
    bucket = new_bucket("race")
    instances = []
    for i in range(INSTANCES):
        proxy = FaultProxy(tmp) if i == INSTANCES - 1 else None
        emu = Emulator(tmp, "--timeout-ms", "60000")
        env = aws_env(proxy.url if proxy else None)
        env["AWS_LAMBDA_LOG_LEVEL"] = "WARN"
        instances.append((emu, Bootstrap(imager, tmp, emu.api, **env), proxy))
    passed = failed = divergent = keys = 0
    t0 = time.time()
    try:
        for seed in seeds:
            r = Race(seed, bucket, instances, tmp)
            bad = r.play()
            keys += len(r.keys)
            divergent += len(bad)
            print("%s seed %d: %d keys, %d invocations, %d redeliveries after failures, %d divergent" %
                  ("ok" if not bad else "FAIL", seed, len(r.keys), r.deliveries, r.retries, len(bad)))
            for b in bad:
                print("    " + b)
            if bad:
                print("    replay: SEED=%d tests/it/it_race.sh" % seed)
            passed += not bad
            failed += bool(bad)
            sys.stdout.flush()
    finally:
        for emu, boot, proxy in instances:
            boot.stop()
            emu.stop()
            if proxy:
                proxy.stop()
    print("# %d seeds, %d keys, %d divergent keys in %.0f s" % (len(seeds), keys, divergent, time.time() - t0))
    print("%d divergent keys" % divergent)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
