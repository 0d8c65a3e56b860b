#!/usr/bin/python3
"""Differential test of our SigV4 signer against botocore's signers.

Generates S3 requests from a fixed seed (awkward keys, query parameters,
session tokens, bodies, header and presigned forms, virtual-hosted and
path-style addressing, custom endpoints with ports), signs each with
botocore (S3SigV4Auth / S3SigV4QueryAuth, clock frozen at the request's
time) and with our signer through build/test/it_botocore, and compares the
canonical request, the string to sign, the signature and what goes on the
wire (Authorization and the added headers, or the whole presigned URL).
A further group is signed the generic way (SigV4Auth / SigV4QueryAuth:
normalised, double-encoded paths, no x-amz-content-sha256).

Run with Debian's interpreter, which sees python3-botocore:
    /usr/bin/python3 tests/it/it_botocore.py TOOL [--count N] [--seed S]
Prints one `ok <id> ...` or `FAIL <id>: expected ... got ...` line per
request and ends with `N passed, N failed, N skipped`.
"""
import argparse
import datetime as real_datetime
import json
import random
import subprocess
import sys
import types
from urllib.parse import quote

try:
    import botocore
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as exc:  # the caller reports this as a skip
    print("skip botocore: botocore not importable (%s); apt-get install python3-botocore" % exc)
    print("0 passed, 0 failed, 1 skipped")
    sys.exit(0)

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def freeze_clock(when):
    """botocore.auth reads the time through its module-level `datetime` name;
    give it a module whose datetime class always answers `when` (naive UTC).
    Both utcnow() (older botocore) and now(tz) (newer) are covered."""

    class Frozen(real_datetime.datetime):
        @classmethod
        def utcnow(cls):
            return when

        @classmethod
        def now(cls, tz=None):
            if tz is None:
                return when
            return when.replace(tzinfo=real_datetime.timezone.utc).astimezone(tz)

    shim = types.ModuleType("datetime")
    shim.__dict__.update(real_datetime.__dict__)
    shim.datetime = Frozen
    botocore.auth.datetime = shim


class _S3Config:
    """What S3SigV4Auth reads from a client config: payload signing on/off."""

    def __init__(self, payload_signing):
        self.s3 = {"payload_signing_enabled": payload_signing}


def recording(cls):
    class Recording(cls):
        def canonical_request(self, request):
            self.creq = super().canonical_request(request)
            return self.creq

        def string_to_sign(self, request, canonical_request):
            self.sts = super().string_to_sign(request, canonical_request)
            return self.sts

    return Recording


# ---------------------------------------------------------------- generation

KEY_PIECES = [
    "photo", "a b", "x+y", "eq=ual", "and&and", "100%", "tilde~", "star*", "quote'",
    "(paren)", "bang!", "dollar$", "comma,", "ü", "日本語", "😀", "semi;colon", "at@",
    "hash#", "q?mark", "[br]", "under_score", "dash-", "dot.jpg", "UPPER", "tab\tchar",
]
SEPARATORS = ["/", "/", "//", "/./", "/../", "/"]
ENDPOINTS = [
    ("https://s3.amazonaws.com", True),
    ("https://s3.eu-west-1.amazonaws.com", True),
    ("http://127.0.0.1:7480", False),
    ("http://localhost:9000", False),
    ("https://objects.example.com:8443", True),
    ("http://s3.example.test:80", True),      # default port: not in Host
    ("https://s3.example.test:443", True),
    ("http://[::1]:7480", False),
]
BUCKETS = ["examplebucket", "my.bucket", "b-1", "sparta-images-2024"]
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
QUERIES = [
    [], [], [],
    [("versionId", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")],
    [("uploads", None)],
    [("partNumber", "1"), ("uploadId", "a b+c/d=")],
    [("list-type", "2"), ("prefix", "photos/a b"), ("delimiter", "/")],
    [("response-content-type", "image/jpeg"), ("response-cache-control", "no-cache")],
    [("acl", None)],
    [("tagging", None), ("versionId", "null")],
    [("x-id", "GetObject"), ("Param", "ü~*'()")],
    [("max-keys", "2"), ("prefix", "J"), ("continuation-token", "ab+/=")],
]
TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def make_key(rng):
    kind = rng.random()
    if kind < 0.06:
        return "k" * 1024
    if kind < 0.10:
        return ("long/" + "é" * 300 + "/" + "x y" * 100)[:1024]
    n = rng.randint(1, 5)
    key = rng.choice(KEY_PIECES)
    for _ in range(n - 1):
        key += rng.choice(SEPARATORS) + rng.choice(KEY_PIECES)
    if rng.random() < 0.1:
        key = rng.choice(["./", "../", "/"]) + key
    if rng.random() < 0.1:
        key += "/"
    return key


def make_headers(rng, method, presign):
    pool = [
        ("Content-Type", rng.choice(["image/jpeg", "image/png", "application/octet-stream"])),
        ("x-amz-meta-origin", rng.choice(["  spaced   value  ", "plain", "a  b   c"])),
        ("X-Amz-Meta-Stamp", "sparta"),
        ("Cache-Control", "max-age=60"),
        ("x-amz-acl", "private"),
        ("Range", "bytes=0-%d" % rng.randint(1, 10000)),
        ("If-None-Match", '"etag-%d"' % rng.randint(1, 99)),
        ("User-Agent", "sparta-imager/0.1"),
        ("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793"),
        ("Expect", "100-continue"),
    ]
    chosen = rng.sample(pool, rng.randint(0, 4 if not presign else 2))
    if presign:
        # botocore signs every header it is given; ours ignores these three
        chosen = [h for h in chosen if h[0] not in ("User-Agent", "X-Amzn-Trace-Id", "Expect")]
    elif rng.random() < 0.15:
        chosen += [("x-amz-meta-dup", "first"), ("X-Amz-Meta-Dup", " second ")]
    if method in ("GET", "HEAD", "DELETE"):
        chosen = [h for h in chosen if h[0] != "Expect"]
    return chosen


def encode_query(pairs):
    return "&".join(quote(k, safe="-_.~") + ("" if v is None else "=" + quote(v, safe="-_.~"))
                    for k, v in pairs)


def make_case(rng, i, generic=False):
    method = rng.choice(["GET", "PUT", "HEAD", "DELETE"])
    presign = rng.random() < 0.4
    endpoint, virtual_ok = rng.choice(ENDPOINTS)
    bucket = rng.choice(BUCKETS)
    virtual = virtual_ok and rng.random() < 0.6
    bucket_level = rng.random() < 0.08
    key = "" if bucket_level else make_key(rng)
    query = rng.choice(QUERIES)
    scheme, host = endpoint.split("://", 1)
    path = "/" + quote(key.encode("utf-8"), safe="/~") if key else "/"
    if virtual:
        host = bucket + "." + host
    else:
        path = "/" + bucket + (path if key else "")
    url = "%s://%s%s" % (scheme, host, path)
    if query:
        url += "?" + encode_query(query)
    body = b""
    if method == "PUT" and not presign:
        size = rng.choice([0, 5, 64, 1000, 4099])
        body = bytes(rng.getrandbits(8) for _ in range(size))
    token = None
    if rng.random() < 0.35:
        token = "".join(rng.choice(TOKEN_CHARS) for _ in range(rng.randint(16, 400)))
    return {
        "id": "req-%03d" % i,
        "mode": "generic" if generic else "s3",
        "service": rng.choice(["service", "execute-api", "sqs"]) if generic else "s3",
        "op": "presign" if presign else "sign",
        "method": method,
        "url": url,
        "headers": make_headers(rng, method, presign),
        "body": body,
        "unsigned": (not presign) and (not generic) and rng.random() < 0.2,
        "token": token,
        "region": rng.choice(REGIONS),
        "time": rng.randint(1369353600, 1900000000),
        "expires": rng.choice([1, 60, 3600, 86400, 604800, rng.randint(1, 604800)]),
        "label": "%s%s %s %s%s" % ("generic " if generic else "", method,
                                   "presign" if presign else "header",
                                 "virtual" if virtual else "path",
                                 " token" if token else ""),
    }


# ---------------------------------------------------------------- signing

def botocore_sign(case):
    when = real_datetime.datetime.fromtimestamp(case["time"], real_datetime.timezone.utc).replace(tzinfo=None)
    freeze_clock(when)
    creds = Credentials(ACCESS_KEY, SECRET_KEY, case["token"])
    generic = case["mode"] == "generic"
    if case["op"] == "presign":
        cls = botocore.auth.SigV4QueryAuth if generic else botocore.auth.S3SigV4QueryAuth
        auth = recording(cls)(creds, case["service"], case["region"], expires=case["expires"])
        req = AWSRequest(method=case["method"], url=case["url"])
        for name, value in case["headers"]:
            req.headers[name] = value
        auth.add_auth(req)
        return {"canonical_request": auth.creq, "string_to_sign": auth.sts,
                "signature": req.url.rsplit("X-Amz-Signature=", 1)[1], "url": req.url}
    cls = botocore.auth.SigV4Auth if generic else botocore.auth.S3SigV4Auth
    auth = recording(cls)(creds, case["service"], case["region"])
    req = AWSRequest(method=case["method"], url=case["url"], data=case["body"])
    for name, value in case["headers"]:
        req.headers[name] = value  # appends: duplicates stay, in order
    if case["unsigned"]:
        req.context["client_config"] = _S3Config(False)
    auth.add_auth(req)
    added = {k: req.headers[k] for k in ("X-Amz-Date", "X-Amz-Content-SHA256",
                                          "X-Amz-Security-Token", "Authorization")
             if k in req.headers}
    return {"canonical_request": auth.creq, "string_to_sign": auth.sts,
            "signature": req.headers["Authorization"].rsplit("Signature=", 1)[1],
            "add_headers": added}


def tool_input(case):
    line = {
        "id": case["id"], "op": case["op"], "mode": case["mode"], "method": case["method"],
        "url": case["url"], "headers": [list(h) for h in case["headers"]],
        "body_hex": case["body"].hex(), "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
        "region": case["region"], "service": case["service"], "time": case["time"],
        "expires": case["expires"],
    }
    if case["token"]:
        line["session_token"] = case["token"]
    if case["unsigned"]:
        line["payload_hash"] = "UNSIGNED-PAYLOAD"
    return json.dumps(line)


def first_difference(field, want, got):
    want, got = str(want), str(got)
    i = next((n for n in range(min(len(want), len(got))) if want[n] != got[n]),
             min(len(want), len(got)))
    lo = max(0, i - 40)
    return "%s differs at %d: expected %r got %r" % (field, i, want[lo:i + 60], got[lo:i + 60])


def compare(case, want, got):
    if got.get("status") != "ok":
        return "expected a signature, got error %r" % got.get("status")
    for field in ("canonical_request", "string_to_sign", "signature"):
        if want[field] != got.get(field):
            return first_difference(field, want[field], got.get(field))
    if case["op"] == "presign":
        if want["url"] != got.get("url"):
            return first_difference("url", want["url"], got.get("url"))
        return None
    ours = {name: value for name, value in got.get("add_headers", [])}
    for name, value in want["add_headers"].items():
        if ours.get(name) != value:
            return first_difference("header " + name, value, ours.get(name))
    if set(ours) - set(want["add_headers"]):
        return "expected added headers %s got %s" % (sorted(want["add_headers"]), sorted(ours))
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tool")
    ap.add_argument("--count", type=int, default=400, help="S3 requests")
    ap.add_argument("--generic", type=int, default=100,
                    help="requests signed the generic (non-S3) way: normalised, double-encoded paths")
    ap.add_argument("--seed", type=int, default=20130524)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cases = [make_case(rng, i) for i in range(args.count)]
    cases += [make_case(rng, args.count + i, generic=True) for i in range(args.generic)]
    expected = [botocore_sign(c) for c in cases]
    proc = subprocess.run([args.tool], input="\n".join(tool_input(c) for c in cases) + "\n",
                          capture_output=True, text=True, check=False)
    replies = {}
    for line in proc.stdout.splitlines():
        reply = json.loads(line)
        replies[reply.get("id")] = reply
    passed = failed = 0
    if proc.returncode != 0:
        print("FAIL it_botocore_tool: expected exit 0, got %d: %s" % (proc.returncode, proc.stderr[-500:]))
        failed += 1
    for case, want in zip(cases, expected):
        problem = compare(case, want, replies.get(case["id"], {"status": "no reply"}))
        if problem:
            failed += 1
            print("FAIL %s (%s) %s %s: %s" % (case["id"], case["label"], case["method"], case["url"][:120], problem))
        else:
            passed += 1
            print("ok %s %s" % (case["id"], case["label"]))
    print("botocore %s, seed %d" % (botocore.__version__, args.seed))
    print("%d passed, %d failed, 0 skipped" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
