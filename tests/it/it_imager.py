#!/usr/bin/env python3
"""End-to-end cases for the imager and presign functions: the bootstraps
driven through tests/it/emulator.py (Runtime API) against the real radosgw,
objects checked with build/s3 and pixels with build/tools/imgcheck.

    tests/it/it_imager.py IMAGER_BOOTSTRAP PRESIGN_BOOTSTRAP [NAME_FILTER]

IMAGER_PLAIN names an optimised imager build for the memory case (the
functional cases prefer a sanitizer build).

Needs the servers.env variables (SPIM_TEST_S3_ENDPOINT, ...) exported, as
tests/run.sh does. Prints `ok CASE` / `FAIL CASE: expected ... got ...`
and the summary line. Every run uses buckets with a random suffix.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from it_lambda import Bootstrap, Emulator, Failure, expect, expect_eq, short  # noqa: E402

BUILD = os.environ.get("SPIM_BUILD", os.path.join(HERE, "..", "..", "build"))
S3 = os.path.join(BUILD, "s3")
MKSAMPLES = os.path.join(BUILD, "tools", "mksamples")
IMGCHECK = os.path.join(BUILD, "tools", "imgcheck")
FAULTPROXY = os.path.join(HERE, "faultproxy.py")
PREFIX = "xformed_"
JPEG_NOISE = 32   # re-encoding a JPEG at quality 90 moves channels by less than this


class Skip(Exception):
    pass


def aws_env(endpoint=None):
    return {
        "AWS_ACCESS_KEY_ID": os.environ["SPIM_TEST_ACCESS_KEY"],
        "AWS_SECRET_ACCESS_KEY": os.environ["SPIM_TEST_SECRET_KEY"],
        "AWS_REGION": os.environ.get("SPIM_TEST_REGION", "us-east-1"),
        "AWS_ENDPOINT_URL_S3": endpoint or os.environ["SPIM_TEST_S3_ENDPOINT"],
    }


def run(cmd, env=None, check=True):
    e = dict(os.environ)
    e.update(aws_env())
    e.update(env or {})
    p = subprocess.run(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if check and p.returncode != 0:
        raise Failure("%s: expected exit 0 got %d: %s" % (" ".join(cmd), p.returncode, short(p.stderr.decode())))
    return p


# ---- S3 through build/s3 ----------------------------------------------------

def s3_put(bucket, key, path, *extra):
    out = run([S3, "put", "s3://%s/%s" % (bucket, key), path] + list(extra)).stdout.decode()
    return out.split("etag: ", 1)[1].strip().strip('"')


def s3_get(bucket, key, tmp):
    path = tempfile.mktemp(dir=tmp)
    run([S3, "get", "s3://%s/%s" % (bucket, key), path])
    with open(path, "rb") as f:
        data = f.read()
    return path, data


def s3_head(bucket, key):
    """The HEAD fields as a dict, or None when the object does not exist."""
    p = run([S3, "head", "s3://%s/%s" % (bucket, key)], check=False)
    if p.returncode == 3:
        return None
    if p.returncode != 0:
        raise Failure("head %s: expected exit 0 or 3 got %d: %s" % (key, p.returncode, p.stderr.decode()))
    return dict(line.split(": ", 1) for line in p.stdout.decode().splitlines() if ": " in line)


def new_bucket(tag):
    name = "imager-%s-%d-%06d" % (tag, os.getpid() % 100000, random.randrange(1000000))
    run([S3, "mb", "s3://" + name])
    return name


# ---- events as S3, SQS, SNS and EventBridge send them ------------------------

def s3_record(bucket, key, name="ObjectCreated:Put", size=1024, etag="0123456789abcdef0123456789abcdef"):
    obj = {"key": urllib.parse.quote_plus(key, safe="/"), "sequencer": "0066F2A1B3C4D5E6F7"}
    if name.startswith("ObjectCreated"):
        obj.update({"size": size, "eTag": etag})
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-26T16:00:00.000Z", "eventName": name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "stamp",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                          "arn": "arn:aws:s3:::" + bucket},
               "object": obj},
    }


def s3_event(*records):
    return {"Records": list(records)}


def sqs_event(s3doc):
    return {"Records": [{
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d", "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": json.dumps(s3doc), "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183"},
        "messageAttributes": {}, "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:stamp-queue", "awsRegion": "us-east-1"}]}


def sns_event(s3doc):
    return {"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:111122223333:stamp:2bcfbf39",
        "Sns": {"Type": "Notification", "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                "TopicArn": "arn:aws:sns:us-east-1:111122223333:stamp", "Subject": "Amazon S3 Notification",
                "Message": json.dumps(s3doc), "Timestamp": "2026-11-26T16:00:00.000Z",
                "SignatureVersion": "1", "Signature": "EXAMPLE", "MessageAttributes": {}}}]}


def eventbridge_event(bucket, key, detail_type="Object Created", reason="PutObject"):
    return {"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": detail_type,
            "source": "aws.s3", "account": "111122223333", "time": "2026-11-26T16:00:00Z",
            "region": "us-east-1", "resources": ["arn:aws:s3:::" + bucket],
            "detail": {"version": "0", "bucket": {"name": bucket},
                       "object": {"key": key, "size": 1024, "etag": "0123456789abcdef0123456789abcdef",
                                  "sequencer": "00617F0829932D1E8A"},
                       "request-id": "N4N7GDK58NMKJ12R", "requester": "111122223333",
                       "source-ip-address": "127.0.0.1", "reason": reason}}


# ---- assertions ----------------------------------------------------------------

def imgcheck(*args):
    out = run([IMGCHECK] + list(args)).stdout.decode().split()
    return {k: v for k, v in (w.split("=", 1) for w in out)}


OUT_FORMAT = {".jpg": ("JPEG", "image/jpeg"), ".png": ("PNG", "image/png"),
              ".gif": ("GIF", "image/gif"), ".bmp": ("BMP", "image/bmp")}


def check_stamped(t, bucket, key, sample, corner="se"):
    """The stamped copy of `key` exists, is marked, keeps the format and
    differs from the sample only in the stamp's corner; the original is
    untouched."""
    ext = os.path.splitext(sample)[1]
    fmt, ctype = OUT_FORMAT[ext]
    head = s3_head(bucket, PREFIX + key)
    expect(head is not None, "stamped object " + PREFIX + key, "to exist", "404")
    expect_eq(key + " content type", ctype, head.get("content-type"))
    expect_eq(key + " marker", "1", head.get("meta-sparta-stamped"))
    orig = s3_head(bucket, key)
    expect_eq(key + " source etag", orig["etag"].strip('"'), head.get("meta-sparta-source-etag"))
    path, _ = s3_get(bucket, PREFIX + key, t.tmp)
    a, b = imgcheck("info", os.path.join(t.samples, sample)), imgcheck("info", path)
    expect_eq(key + " output format", fmt, b["format"])
    expect_eq(key + " size", (a["width"], a["height"]), (b["width"], b["height"]))
    expect_eq(key + " channels", a["channels"], b["channels"])
    d = imgcheck("diff", os.path.join(t.samples, sample), path, str(JPEG_NOISE if fmt == "JPEG" else 0))
    w, h = int(d["width"]), int(d["height"])
    x0, y0, x1, y1 = (int(v) for v in d["bbox"].split(","))
    expect(int(d["changed"]) > w * h // 100, key + " stamped pixels", "over 1% of the image", d)
    inside = {"se": x0 >= w // 2 and y0 >= h // 2, "ne": x0 >= w // 2 and y1 < h // 2}[corner]
    expect(inside, key + " changed pixels", "only in the %s quarter of %dx%d" % (corner, w, h), d["bbox"])
    _, data = s3_get(bucket, key, t.tmp)
    with open(os.path.join(t.samples, sample), "rb") as f:
        expect(f.read() == data, key + " original bytes", "unchanged", "%d different bytes" % len(data))


def check_absent(bucket, key):
    expect(s3_head(bucket, key) is None, "object " + key, "absent", "it exists")


ENVELOPE = {"sqs": False, "wrapped": False}   # the second pass over the shared cases wraps S3 events in SQS


def answer(emu, event, **headers):
    ENVELOPE["wrapped"] = ENVELOPE["sqs"] and isinstance(event, dict) and bool(event.get("Records")) and \
        all(r.get("eventSource") == "aws:s3" for r in event["Records"])
    if ENVELOPE["wrapped"]:
        event = {"Records": [dict(sqs_event(s3_event(r))["Records"][0], messageId="msg-%d" % i)
                             for i, r in enumerate(event["Records"])]}
    return emu.result(emu.event(event, **headers), timeout=120)["final"]


def summary(rec):
    expect_eq("answer kind", "response", rec["kind"])
    doc = json.loads(rec["body"])
    if ENVELOPE["wrapped"]:
        expect_eq("batchItemFailures", [], doc.get("batchItemFailures"))
    return doc


def counts(doc):
    return {k: doc[k] for k in ("stamped", "deleted", "skipped", "failed")}


def c(stamped=0, deleted=0, skipped=0, failed=0):
    return {"stamped": stamped, "deleted": deleted, "skipped": skipped, "failed": failed}


# ---- cases on the shared function (default configuration) --------------------

SAMPLES = [("photo.jpg", "ObjectCreated:Put"), ("small.jpg", "ObjectCreated:Post"),
           ("alpha.png", "ObjectCreated:Copy"), ("palette.gif", "ObjectCreated:CompleteMultipartUpload"),
           ("photo.bmp", "ObjectCreated:Put"), ("large.jpg", "ObjectCreated:Put")]


def case_formats_stamped(t):
    recs = []
    for sample, name in SAMPLES:
        s3_put(t.bucket, "in/" + sample, os.path.join(t.samples, sample))
        recs.append(s3_record(t.bucket, "in/" + sample, name))
    t.batch = s3_event(*recs)
    doc = summary(answer(t.emu, t.batch))
    expect_eq("summary", c(stamped=len(SAMPLES)), counts(doc))
    for sample, _ in SAMPLES:
        check_stamped(t, t.bucket, "in/" + sample, sample)


def case_exif_orientation_6(t):
    s3_put(t.bucket, "rotated.jpg", os.path.join(t.samples, "rotated.jpg"))
    doc = summary(answer(t.emu, s3_event(s3_record(t.bucket, "rotated.jpg", "s3:ObjectCreated:Put"))))
    expect_eq("summary", c(stamped=1), counts(doc))
    path, _ = s3_get(t.bucket, PREFIX + "rotated.jpg", t.tmp)
    expect_eq("orientation kept", "6", imgcheck("info", path)["orientation"])
    # displayed bottom-right of a photo turned 90 degrees clockwise = stored top-right
    check_stamped(t, t.bucket, "rotated.jpg", "rotated.jpg", corner="ne")


def case_redelivery_is_harmless(t):
    before = {s: s3_head(t.bucket, PREFIX + "in/" + s)["etag"] for s, _ in SAMPLES}
    doc = summary(answer(t.emu, t.batch))
    expect_eq("summary of the second delivery", c(stamped=len(SAMPLES)), counts(doc))
    after = {s: s3_head(t.bucket, PREFIX + "in/" + s)["etag"] for s, _ in SAMPLES}
    expect_eq("stamped objects (same bytes, same ETags)", before, after)
    check_absent(t.bucket, PREFIX + PREFIX + "in/photo.jpg")


def case_key_with_spaces_and_utf8(t):
    key = "photos/été 2026/a+b photo ✓.jpg"
    s3_put(t.bucket, key, os.path.join(t.samples, "small.jpg"))
    rec = s3_record(t.bucket, key)
    expect("+" in rec["s3"]["object"]["key"] and "%C3%A9" in rec["s3"]["object"]["key"], "event key",
           "form-encoded", rec["s3"]["object"]["key"])
    doc = summary(answer(t.emu, s3_event(rec)))
    expect_eq("summary", c(stamped=1), counts(doc))
    expect_eq("reported key", key, doc["records"][0]["key"])
    check_stamped(t, t.bucket, key, "small.jpg")


def case_prefixed_key_skipped(t):
    s3_put(t.bucket, PREFIX + "already.jpg", os.path.join(t.samples, "small.jpg"))
    doc = summary(answer(t.emu, s3_event(s3_record(t.bucket, PREFIX + "already.jpg"))))
    expect_eq("summary", c(skipped=1), counts(doc))
    check_absent(t.bucket, PREFIX + PREFIX + "already.jpg")
    # "prefix" inside the key (not at the start) is an ordinary key
    s3_put(t.bucket, "dir/" + PREFIX + "x.jpg", os.path.join(t.samples, "small.jpg"))
    doc = summary(answer(t.emu, s3_event(s3_record(t.bucket, "dir/" + PREFIX + "x.jpg"))))
    expect_eq("summary for a key containing the prefix", c(stamped=1), counts(doc))


def case_marker_guard(t):
    ensure_stamped(t, "in/small.jpg", "small.jpg")
    path, _ = s3_get(t.bucket, PREFIX + "in/small.jpg", t.tmp)
    s3_put(t.bucket, "copy-of-stamped.jpg", path, "--content-type", "image/jpeg", "--meta", "sparta-stamped=1")
    doc = summary(answer(t.emu, s3_event(s3_record(t.bucket, "copy-of-stamped.jpg", "ObjectCreated:Copy"))))
    expect_eq("summary", c(skipped=1), counts(doc))
    expect("marker" in doc["records"][0].get("reason", ""), "reason", "mentions the marker", doc["records"][0])
    check_absent(t.bucket, PREFIX + "copy-of-stamped.jpg")


def case_bad_objects_skipped(t):
    names = ["notimage.txt", "truncated.jpg", "bomb.png"]
    for n in names:
        s3_put(t.bucket, "bad/" + n, os.path.join(t.samples, n))
    recs = [s3_record(t.bucket, "bad/" + n) for n in names] + [s3_record(t.bucket, "bad/never-uploaded.jpg")]
    doc = summary(answer(t.emu, s3_event(*recs)))
    # the original of the last one does not exist: its copy is deleted (there was none)
    expect_eq("summary", c(skipped=3, deleted=1), counts(doc))
    reasons = [r.get("reason", "") for r in doc["records"]]
    expect("budget" in reasons[2] or "pixels" in reasons[2], "bomb reason", "over the pixel budget", reasons[2])
    expect_eq("missing object reason", "source object is gone", reasons[3])
    for n in names:
        check_absent(t.bucket, PREFIX + "bad/" + n)


def case_overwritten_by_a_non_image(t):
    """An image replaced by something that cannot be stamped loses its copy
    (the copy of the older version would no longer match the original)."""
    s3_put(t.bucket, "became-text.jpg", os.path.join(t.samples, "small.jpg"))
    expect_eq("summary", c(stamped=1), counts(summary(answer(t.emu, s3_event(s3_record(t.bucket, "became-text.jpg"))))))
    s3_put(t.bucket, "became-text.jpg", os.path.join(t.samples, "notimage.txt"))
    doc = summary(answer(t.emu, s3_event(s3_record(t.bucket, "became-text.jpg"))))
    expect_eq("summary after the overwrite", c(skipped=1), counts(doc))
    check_absent(t.bucket, PREFIX + "became-text.jpg")


def case_key_too_long(t):
    key = "k" * (1024 - len(PREFIX) + 1)
    doc = summary(answer(t.emu, s3_event(s3_record(t.bucket, key))))
    expect_eq("summary", c(skipped=1), counts(doc))
    bad = s3_record(t.bucket, "x.jpg")
    bad["s3"]["object"]["key"] = "bad%zzescape.jpg"
    ensure_stamped(t, "in/small.jpg", "small.jpg")
    not_utf8 = s3_record(t.bucket, "x.jpg")
    not_utf8["s3"]["object"]["key"] = "latin1-%E9t%E9.jpg"
    doc = summary(answer(t.emu, s3_event(bad, not_utf8, s3_record(t.bucket, "in/small.jpg"))))
    expect_eq("summary with undecodable keys", c(stamped=1, skipped=2), counts(doc))
    expect_eq("reported key (as sent, the decoded one is not UTF-8)", "latin1-%E9t%E9.jpg", doc["records"][1]["key"])


def case_batch_of_40(t):
    keys = ["batch/%02d.jpg" % i for i in range(40)]
    for k in keys:
        s3_put(t.bucket, k, os.path.join(t.samples, "small.jpg"))
    doc = summary(answer(t.emu, s3_event(*[s3_record(t.bucket, k) for k in keys])))
    expect_eq("summary", c(stamped=40), counts(doc))
    missing = [k for k in keys if s3_head(t.bucket, PREFIX + k) is None]
    expect_eq("stamped objects missing", [], missing)


def case_removed_deletes_stamped(t):
    s3_put(t.bucket, "gone.jpg", os.path.join(t.samples, "small.jpg"))
    s3_put(t.bucket, "gone2.jpg", os.path.join(t.samples, "small.jpg"))
    summary(answer(t.emu, s3_event(s3_record(t.bucket, "gone.jpg"), s3_record(t.bucket, "gone2.jpg"))))
    expect(s3_head(t.bucket, PREFIX + "gone.jpg") is not None, "stamped gone.jpg", "to exist", None)
    run([S3, "rm", "s3://%s/gone.jpg" % t.bucket])
    run([S3, "rm", "s3://%s/gone2.jpg" % t.bucket])
    doc = summary(answer(t.emu, s3_event(s3_record(t.bucket, "gone.jpg", "ObjectRemoved:Delete"),
                                         s3_record(t.bucket, "gone2.jpg", "ObjectRemoved:DeleteMarkerCreated"))))
    expect_eq("summary", c(deleted=2), counts(doc))
    check_absent(t.bucket, PREFIX + "gone.jpg")
    check_absent(t.bucket, PREFIX + "gone2.jpg")
    doc = summary(answer(t.emu, s3_event(s3_record(t.bucket, "gone.jpg", "ObjectRemoved:Delete"))))
    expect_eq("summary of a repeated removal", c(deleted=1), counts(doc))
    expect(s3_head(t.bucket, PREFIX + "in/photo.jpg") is not None, "other stamped objects", "kept", None)


def case_wrapped_events(t):
    for tag in ("sqs", "sns", "eb"):
        s3_put(t.bucket, "wrapped/%s.jpg" % tag, os.path.join(t.samples, "small.jpg"))
    for tag, ev in (("sqs", sqs_event(s3_event(s3_record(t.bucket, "wrapped/sqs.jpg")))),
                    ("sns", sns_event(s3_event(s3_record(t.bucket, "wrapped/sns.jpg")))),
                    ("eb", eventbridge_event(t.bucket, "wrapped/eb.jpg"))):
        doc = summary(answer(t.emu, ev))
        expect_eq(tag + " summary", c(stamped=1), counts(doc))
        check_stamped(t, t.bucket, "wrapped/%s.jpg" % tag, "small.jpg")
    run([S3, "rm", "s3://%s/wrapped/eb.jpg" % t.bucket])
    doc = summary(answer(t.emu, eventbridge_event(t.bucket, "wrapped/eb.jpg", "Object Deleted", "DeleteObject")))
    expect_eq("eventbridge removal", c(deleted=1), counts(doc))
    check_absent(t.bucket, PREFIX + "wrapped/eb.jpg")


def case_test_event(t):
    doc = summary(answer(t.emu, {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-26T16:00:00.000Z",
                                 "Bucket": t.bucket, "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}))
    expect_eq("summary", c(), counts(doc))
    expect_eq("test events", 1, doc["testEvents"])


def case_not_an_event_fails(t):
    rec = answer(t.emu, "this is not json")
    expect_eq("answer kind", "error", rec["kind"])
    expect_eq("error type header", "Function.InvalidEvent", rec["errorTypeHeader"])


FIXTURES = os.path.join(HERE, "..", "fixtures", "imager")


def fixture(t, name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return json.loads(f.read().replace("sparta-imager-demo", t.bucket))


def case_fixtures(t):
    """The event templates of tests/fixtures/imager do what their README says."""
    for key in ("uploads/photo.jpg", "uploads/été 2026 ✓.jpg"):
        s3_put(t.bucket, key, os.path.join(t.samples, "small.jpg"))
    expected = [("s3_put.json", c(stamped=1)), ("sqs_put.json", c(stamped=1)), ("sns_put.json", c(stamped=1)),
                ("eventbridge_put.json", c(stamped=1)), ("s3_batch.json", c(stamped=2, skipped=1)),
                ("s3_test_event.json", c()), ("s3_delete.json", c(deleted=1))]
    for name, want in expected:
        if name == "s3_delete.json":
            run([S3, "rm", "s3://%s/uploads/photo.jpg" % t.bucket])
        doc = summary(answer(t.emu, fixture(t, name)))
        expect_eq(name + " summary", want, counts(doc))
    check_absent(t.bucket, PREFIX + "uploads/photo.jpg")
    check_stamped(t, t.bucket, "uploads/été 2026 ✓.jpg", "small.jpg")


# Pillow (Debian's python3-pil, under /usr/bin/python3) makes and reads the
# WebP and animated GIF samples: imgcheck (stb) reads no WebP and one GIF frame.
PIL_PY = "/usr/bin/python3"
PIL_MAKE = """
import sys
from PIL import Image, ImageChops
d = sys.argv[1]
photo = Image.open(d + '/photo.jpg').convert('RGB')
photo.save(d + '/photo.webp', quality=80)
Image.open(d + '/alpha.png').save(d + '/alpha.webp', lossless=True)
fr = [ImageChops.offset(photo, k * 9, 0) for k in range(3)]
fr[0].save(d + '/anim.webp', save_all=True, append_images=fr[1:], duration=[70, 80, 90], loop=4, quality=75)
q = [f.quantize(64) for f in fr]
q[0].save(d + '/anim.gif', save_all=True, append_images=q[1:], duration=[70, 80, 90], loop=4)
"""
PIL_INFO = """
import sys, json
from PIL import Image, ImageSequence
im = Image.open(sys.argv[1])
frames = [f.info.get('duration') for f in ImageSequence.Iterator(im)]
im.seek(0)
print(json.dumps({'format': im.format, 'size': list(im.size), 'durations': frames,
                  'loop': im.info.get('loop')}))
"""
KEPT = [("photo.webp", "image/webp", "WEBP"), ("alpha.webp", "image/webp", "WEBP"),
        ("anim.webp", "image/webp", "WEBP"), ("anim.gif", "image/gif", "GIF")]


def pil_info(path):
    return json.loads(run([PIL_PY, "-c", PIL_INFO, path]).stdout.decode())


def case_webp_and_gif_stay_themselves(t):
    """WebP (lossy, lossless with alpha, animated) and an animated GIF come
    back in their own format and Content-Type, with every frame's duration
    and the loop count; the bytes changed (stamped)."""
    if subprocess.run([PIL_PY, "-c", "import PIL"], capture_output=True).returncode != 0:
        raise Skip("Pillow (python3-pil) is not installed")
    run([PIL_PY, "-c", PIL_MAKE, t.samples])
    recs = []
    for sample, _, _ in KEPT:
        s3_put(t.bucket, "kept/" + sample, os.path.join(t.samples, sample))
        recs.append(s3_record(t.bucket, "kept/" + sample, "ObjectCreated:Put"))
    doc = summary(answer(t.emu, s3_event(*recs)))
    expect_eq("summary", c(stamped=len(KEPT)), counts(doc))
    for sample, ctype, fmt in KEPT:
        head = s3_head(t.bucket, PREFIX + "kept/" + sample)
        expect(head is not None, "stamped " + sample, "to exist", "404")
        expect_eq(sample + " content type", ctype, head.get("content-type"))
        expect_eq(sample + " marker", "1", head.get("meta-sparta-stamped"))
        path, data = s3_get(t.bucket, PREFIX + "kept/" + sample, t.tmp)
        a, b = pil_info(os.path.join(t.samples, sample)), pil_info(path)
        expect_eq(sample + " format", fmt, b["format"])
        expect_eq(sample + " size", a["size"], b["size"])
        expect_eq(sample + " frame durations", a["durations"], b["durations"])
        expect_eq(sample + " loop count", a["loop"], b["loop"])
        with open(os.path.join(t.samples, sample), "rb") as f:
            expect(f.read() != data, sample + " output", "stamped (different bytes)", "the input unchanged")


SHARED = [case_formats_stamped, case_webp_and_gif_stay_themselves, case_exif_orientation_6, case_redelivery_is_harmless,
          case_key_with_spaces_and_utf8, case_prefixed_key_skipped, case_marker_guard,
          case_bad_objects_skipped, case_overwritten_by_a_non_image, case_key_too_long, case_batch_of_40, case_removed_deletes_stamped,
          case_wrapped_events, case_test_event, case_not_an_event_fails, case_fixtures]


# ---- cases with their own function -------------------------------------------

class FaultProxy:
    def __init__(self, tmp, delay_ms=0):
        self.proc = subprocess.Popen([sys.executable, FAULTPROXY, "--upstream", os.environ["SPIM_TEST_S3_ENDPOINT"],
                                      "--port", "0", "--delay-ms", str(delay_ms)], stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(tmp, "proxy.log"), "ab"))
        self.port = int(self.proc.stdout.readline())
        self.url = "http://127.0.0.1:%d" % self.port

    def control(self, what):
        with urllib.request.urlopen(self.url + "/__faultproxy__/" + what, timeout=10) as r:
            return r.read().decode()

    def stop(self):
        try:
            self.control("quit")
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def case_transient_fault_mid_batch(t):
    """A record in the middle of the batch meets 503 SlowDown on every
    attempt of its GET: the records before and after it are still handled,
    then the invocation fails with TransientS3Error, and Lambda's retry of
    the same event succeeds."""
    proxy = FaultProxy(t.tmp)
    emu = Emulator(t.tmp, "--timeout-ms", "60000")
    keys = ["fault/%d.jpg" % i for i in range(3)]
    for k in keys:
        s3_put(t.bucket, k, os.path.join(t.samples, "small.jpg"))
    # the first record is skipped without a request, so the faults hit the second
    batch = s3_event(s3_record(t.bucket, PREFIX + "fault/x.jpg"), *[s3_record(t.bucket, k) for k in keys])
    boot = Bootstrap(t.imager, t.tmp, emu.api, **dict(aws_env(proxy.url)))
    try:
        proxy.control("set?mode=slowdown&count=3")
        rec = answer(emu, batch)
        expect_eq("answer kind", "error", rec["kind"])
        expect_eq("error type header", "Function.TransientS3Error", rec["errorTypeHeader"])
        body = json.loads(rec["body"])
        expect_eq("errorType", "TransientS3Error", body["errorType"])
        expect("1 of 4 records failed; first: fault/0.jpg" in body["errorMessage"], "errorMessage",
               "1 of 4 records failed; first: fault/0.jpg ...", body["errorMessage"])
        check_absent(t.bucket, PREFIX + keys[0])
        for k in keys[1:]:
            expect(s3_head(t.bucket, PREFIX + k) is not None, "stamped " + k, "to exist", "404")
        stats = proxy.control("stats")
        expect("faults=3" in stats, "proxy faults", "faults=3 (every attempt of one GET)", stats)
        doc = summary(answer(emu, batch))
        expect_eq("summary of the retry", c(stamped=3, skipped=1), counts(doc))
        # a DELETE that keeps failing with 500 fails the invocation too
        proxy.control("set?mode=internal&count=3")
        rec = answer(emu, s3_event(s3_record(t.bucket, keys[1], "ObjectRemoved:Delete")))
        expect_eq("error type header after DELETE faults", "Function.TransientS3Error", rec["errorTypeHeader"])
        expect(s3_head(t.bucket, PREFIX + keys[1]) is not None, "stamped " + keys[1], "still there", "404")
    finally:
        boot.stop()
        emu.stop()
        proxy.stop()


def case_memory_flat(t):
    """Warm invocations do not grow the optimised build's resident memory."""
    if not t.plain:
        raise Skip("no optimised build (IMAGER_PLAIN)")
    s3_put(t.bucket, "mem/photo.jpg", os.path.join(t.samples, "photo.jpg"))
    # the copy is removed before each invocation, so that each one stamps
    event = s3_event(s3_record(t.bucket, "mem/photo.jpg"))
    emu = Emulator(t.tmp, "--timeout-ms", "60000")
    boot = Bootstrap(t.plain, t.tmp, emu.api, **aws_env())
    try:
        for i in range(60):
            if i == 10:
                warm = boot.rss_kib()
            run([S3, "rm", "s3://%s/%smem/photo.jpg" % (t.bucket, PREFIX)])
            expect_eq("summary %d" % i, c(stamped=1), counts(summary(answer(emu, event))))
        grown = boot.rss_kib() - warm
        expect(grown < 2048, "RSS growth over 50 warm invocations", "under 2048 KiB",
               "%d KiB (from %d KiB)" % (grown, warm))
    finally:
        boot.stop()
        emu.stop()


def case_summary_lists_100_records(t):
    doc = summary(answer(t.emu, s3_event(*[s3_record(t.bucket, PREFIX + "many/%d.jpg" % i) for i in range(150)])))
    expect_eq("summary", c(skipped=150), counts(doc))
    expect_eq("records listed", 100, len(doc["records"]))
    expect_eq("recordsOmitted", 50, doc["recordsOmitted"])


BAD_CONFIGS = [
    ({"SPARTA_STAMP_GRAVITY": "up"}, "SPARTA_STAMP_GRAVITY"),
    ({"SPARTA_JPEG_QUALITY": "0"}, "SPARTA_JPEG_QUALITY"),
    ({"SPARTA_JPEG_QUALITY": "101"}, "SPARTA_JPEG_QUALITY"),
    ({"SPARTA_STAMP_OPACITY": "2"}, "SPARTA_STAMP_OPACITY"),
    ({"SPARTA_STAMP_MARGIN": "-1"}, "SPARTA_STAMP_MARGIN"),
    ({"SPARTA_STAMP_SCALE": "abc"}, "SPARTA_STAMP_SCALE"),
    ({"SPARTA_MAX_PIXELS": "0"}, "SPARTA_MAX_PIXELS"),
    ({"SPARTA_OUTPUT_PREFIX": ""}, "SPARTA_OUTPUT_PREFIX"),
    ({"SPARTA_STAMP": "/nonexistent/stamp.png"}, "SPARTA_STAMP"),
    ({"SPARTA_STAMP": "s3://only-a-bucket"}, "SPARTA_STAMP"),
    ({"SPARTA_STAMP": "s3://imager-no-such-bucket-x/stamp.png"}, "SPARTA_STAMP"),
    ({"SPARTA_STAMP_TILE": "-1"}, "SPARTA_STAMP_TILE"),
    ({"SPARTA_STAMP_TEXT": "\u4e2d"}, "SPARTA_STAMP_TEXT: the font has no glyph for U+4E2D"),
    ({"SPARTA_STAMP_TEXT": "{month}"}, "SPARTA_STAMP_TEXT: unknown placeholder"),
    ({"SPARTA_STAMP_TEXT": "hi", "SPARTA_STAMP_FONT": "/nonexistent/font.ttf"}, "SPARTA_STAMP_FONT"),
    ({"SPARTA_STAMP_TEXT": "hi", "SPARTA_STAMP_FONT": "/etc/hostname"}, "SPARTA_STAMP_FONT: not a TrueType"),
    ({"SPARTA_STAMP_TEXT_COLOR": "red"}, "SPARTA_STAMP_TEXT_COLOR"),
]


def case_bad_configuration_fails_init(t):
    event = os.path.join(t.tmp, "test-event.json")
    with open(event, "w") as f:
        json.dump({"Event": "s3:TestEvent", "Service": "Amazon S3"}, f)
    for env, var in BAD_CONFIGS:
        e = dict(aws_env())
        e.update(env)
        b = Bootstrap(t.imager, t.tmp, None, ["--event", event], **e)
        rc = b.wait(60)
        expect_eq("exit status with %s" % env, 1, rc)
        doc = json.loads(b.stdout)
        expect_eq("errorType with %s" % env, "Runtime.ConfigInvalid", doc.get("errorType"))
        expect(var in doc.get("errorMessage", ""), "errorMessage with %s" % env, "naming " + var, doc)
    # through the Runtime API: /init/error, then the process exits
    emu = Emulator(t.tmp)
    e = dict(aws_env())
    e["SPARTA_STAMP_GRAVITY"] = "up"
    b = Bootstrap(t.imager, t.tmp, emu.api, **e)
    try:
        rc = b.wait(30)
        expect(rc not in (0, None), "exit status after init failure", "non-zero", rc)
        status, rec = emu.call("GET", "/control/init-error?timeout=5")
        expect_eq("/init/error recorded", 200, status)
        expect_eq("error type header", "Runtime.ConfigInvalid", rec["errorTypeHeader"])
        expect("SPARTA_STAMP_GRAVITY" in rec["body"], "init error body", "naming the variable", rec["body"])
    finally:
        b.stop()
        emu.stop()


def case_custom_configuration(t):
    """Another prefix, output bucket, a stamp from s3:// and gravity nw."""
    out_bucket = new_bucket("out")
    s3_put(t.bucket, "assets/stamp.png", os.path.join(t.samples, "alpha.png"))
    s3_put(t.bucket, "custom.png", os.path.join(t.samples, "alpha.png"))
    path = os.path.join(t.tmp, "custom-event.json")
    with open(path, "w") as f:
        json.dump(s3_event(s3_record(t.bucket, "custom.png")), f)
    e = dict(aws_env())
    e.update({"SPARTA_OUTPUT_PREFIX": "stamped/", "SPARTA_OUTPUT_BUCKET": out_bucket,
              "SPARTA_STAMP": "s3://%s/assets/stamp.png" % t.bucket, "SPARTA_STAMP_GRAVITY": "nw",
              "SPARTA_STAMP_SCALE": "0.2", "SPARTA_STAMP_OPACITY": "0.5", "SPARTA_STAMP_MARGIN": "4"})
    b = Bootstrap(t.imager, t.tmp, None, ["--event", path], **e)
    rc = b.wait(60)
    expect_eq("local invoke exit status", 0, rc)
    doc = json.loads(b.stdout)
    expect_eq("summary", c(stamped=1), counts(doc))
    expect_eq("output key", "stamped/custom.png", doc["records"][0]["output"])
    check_absent(t.bucket, "stamped/custom.png")
    got, _ = s3_get(out_bucket, "stamped/custom.png", t.tmp)
    d = imgcheck("diff", os.path.join(t.samples, "alpha.png"), got)
    x0, y0, x1, y1 = (int(v) for v in d["bbox"].split(","))
    expect(x0 >= 4 and y0 >= 4 and x1 < 200 and y1 < 150, "changed pixels", "in the nw quarter, 4 px in", d["bbox"])


def case_tiles_and_text(t):
    """SPARTA_STAMP_TILE covers the whole image; SPARTA_STAMP_TEXT (font from s3://) adds a line at
    its own gravity, with the event's placeholders."""
    s3_put(t.bucket, "assets/font.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    s3_put(t.bucket, "tiled.png", os.path.join(t.samples, "alpha.png"))
    path = os.path.join(t.tmp, "tiled-event.json")
    with open(path, "w") as f:
        json.dump(s3_event(s3_record(t.bucket, "tiled.png")), f)
    got = {}
    for name, extra in (("tiles", {}), ("text", {"SPARTA_STAMP_TEXT": "\u00a9 {year} {bucket}/{basename}",
                                              "SPARTA_STAMP_TEXT_GRAVITY": "nw",
                                              "SPARTA_STAMP_FONT": "s3://%s/assets/font.ttf" % t.bucket})):
        e = dict(aws_env())
        e.update({"SPARTA_STAMP_TILE": "50%", "SPARTA_STAMP_SCALE": "0.1", "SPARTA_OUTPUT_PREFIX": name + "/"})
        e.update(extra)
        b = Bootstrap(t.imager, t.tmp, None, ["--event", path], **e)
        expect_eq("local invoke exit status (%s)" % name, 0, b.wait(60))
        expect_eq("summary (%s)" % name, c(stamped=1), counts(json.loads(b.stdout)))
        got[name], _ = s3_get(t.bucket, name + "/tiled.png", t.tmp)
    d = imgcheck("diff", os.path.join(t.samples, "alpha.png"), got["tiles"])
    x0, y0, x1, y1 = (int(v) for v in d["bbox"].split(","))
    expect(x0 < 40 and y0 < 40 and x1 > 360 and y1 > 260, "tiled: changed pixels", "all over", d["bbox"])
    d = imgcheck("diff", got["tiles"], got["text"])
    x0, y0, x1, y1 = (int(v) for v in d["bbox"].split(","))
    expect(x0 < 10 and y0 < 10 and x1 > 60 and y1 < 60, "text: changed pixels", "a line at the top left", d["bbox"])


def local_summary(t, event, **env):
    path = tempfile.mktemp(prefix="event-", suffix=".json", dir=t.tmp)
    with open(path, "w") as f:
        json.dump(event, f)
    e = dict(aws_env())
    e.update(env)
    b = Bootstrap(t.imager, t.tmp, None, ["--event", path], **e)
    rc = b.wait(120)
    expect_eq("local invoke exit status", 0, rc)
    return json.loads(b.stdout)


def case_pixel_budget(t):
    """SPARTA_MAX_PIXELS, else AWS_LAMBDA_FUNCTION_MEMORY_SIZE, bounds the decode."""
    for sample in ("small.jpg", "photo.jpg", "large.jpg"):
        s3_put(t.bucket, "budget/" + sample, os.path.join(t.samples, sample))
    event = s3_event(*[s3_record(t.bucket, "budget/" + s) for s in ("small.jpg", "photo.jpg", "large.jpg")])
    # the decode path (SPARTA_JPEG_MODE=recode) counts every pixel of the photo
    doc = local_summary(t, event, SPARTA_MAX_PIXELS="1000000", SPARTA_JPEG_MODE="recode")
    expect_eq("actions with SPARTA_MAX_PIXELS=1000000", ["stamped", "skipped", "skipped"],
              [r["action"] for r in doc["records"]])
    # the compressed domain counts only the MCUs under the stamp
    doc = local_summary(t, event, SPARTA_MAX_PIXELS="1000000")
    expect_eq("actions with SPARTA_MAX_PIXELS=1000000, compressed domain", ["stamped"] * 3,
              [r["action"] for r in doc["records"]])
    # the copies made above carry the originals' ETags: the imager would
    # leave them alone (a duplicate delivery), so remove them first
    for sample in ("small.jpg", "photo.jpg", "large.jpg"):
        run([S3, "rm", "s3://%s/%sbudget/%s" % (t.bucket, PREFIX, sample)])
    # (32 MiB - 24 MiB) / 5 bytes per pixel = 1.68 MP: photo.jpg (1.23 MP) fits, large.jpg (6 MP) does not
    doc = local_summary(t, event, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="32", SPARTA_JPEG_MODE="recode")
    expect_eq("actions with 32 MB of memory", ["stamped", "stamped", "skipped"], [r["action"] for r in doc["records"]])
    doc = local_summary(t, event, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="32", SPARTA_MAX_PIXELS="7000000")
    expect_eq("SPARTA_MAX_PIXELS over the memory default", ["stamped"] * 3, [r["action"] for r in doc["records"]])
    # objects over 2 bytes per budget pixel + 1 MiB are refused before they are read
    big = os.path.join(t.tmp, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(1_500_000))
    s3_put(t.bucket, "budget/big.jpg", big)
    doc = local_summary(t, s3_event(s3_record(t.bucket, "budget/big.jpg")), SPARTA_MAX_PIXELS="100000")
    expect_eq("big object action", "skipped", doc["records"][0]["action"])
    expect("1248576" in doc["records"][0]["reason"], "big object reason", "naming the limit (1248576 bytes)",
           doc["records"][0]["reason"])


def case_local_invoke(t):
    path = os.path.join(t.tmp, "local-event.json")
    with open(path, "w") as f:
        json.dump(s3_event(s3_record(t.bucket, "in/small.jpg", "ObjectCreated:Put")), f)
    b = Bootstrap(t.imager, t.tmp, None, ["--event", path], **aws_env())
    rc = b.wait(60)
    expect_eq("exit status", 0, rc)
    doc = json.loads(b.stdout)
    expect_eq("summary", c(stamped=1), counts(doc))
    expect("stamped" in b.log() and " ms=" in b.log(), "log line", "stamped ... ms=", b.log())


# ---- presign -------------------------------------------------------------------

def http_api_v2(query, raw_query=None):
    return {"version": "2.0", "routeKey": "GET /link", "rawPath": "/link",
            "rawQueryString": raw_query if raw_query is not None else urllib.parse.urlencode(query),
            "headers": {"host": "abc.execute-api.us-east-1.amazonaws.com"},
            "queryStringParameters": query,
            "requestContext": {"http": {"method": "GET", "path": "/link", "protocol": "HTTP/1.1",
                                        "sourceIp": "127.0.0.1"}, "requestId": "id", "stage": "$default"},
            "isBase64Encoded": False}


def presign_call(t, event, **env):
    path = tempfile.mktemp(prefix="presign-", suffix=".json", dir=t.tmp)
    with open(path, "w") as f:
        json.dump(event, f)
    e = dict(aws_env())
    e.update({"SPARTA_BUCKET": t.bucket})
    e.update(env)
    b = Bootstrap(t.presign, t.tmp, None, ["--event", path], **e)
    rc = b.wait(60)
    expect_eq("presign exit status", 0, rc)
    resp = json.loads(b.stdout)
    body = json.loads(resp["body"])
    return resp, body


def ensure_stamped(t, key, sample):
    """Presign cases can run alone (NAME_FILTER): stamp what they link to."""
    if s3_head(t.bucket, PREFIX + key) is None:
        s3_put(t.bucket, key, os.path.join(t.samples, sample))
        expect_eq("stamping " + key, c(stamped=1), counts(summary(answer(t.emu, s3_event(s3_record(t.bucket, key))))))


def case_presign_link(t):
    ensure_stamped(t, "in/photo.jpg", "photo.jpg")
    resp, body = presign_call(t, http_api_v2({"key": "in/photo.jpg"}))
    expect_eq("status", 200, resp["statusCode"])
    expect_eq("CORS header", "*", resp["headers"].get("Access-Control-Allow-Origin"))
    expect_eq("key", PREFIX + "in/photo.jpg", body["key"])
    expect_eq("expires_in", 300, body["expires_in"])
    got = subprocess.run(["curl", "-sSf", "--max-time", "30", body["url"]], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE).stdout
    _, want = s3_get(t.bucket, PREFIX + "in/photo.jpg", t.tmp)
    expect(got == want, "bytes behind the URL", "the stamped object (%d bytes)" % len(want), len(got))
    resp, body = presign_call(t, http_api_v2({"key": PREFIX + "in/photo.jpg", "expires": "60"}),
                              SPARTA_CORS_ORIGIN="https://gallery.example")
    expect_eq("status with a stamped key", 200, resp["statusCode"])
    expect_eq("key already prefixed", PREFIX + "in/photo.jpg", body["key"])
    expect_eq("expires chosen by the request", 60, body["expires_in"])
    expect_eq("CORS origin", "https://gallery.example", resp["headers"].get("Access-Control-Allow-Origin"))


def case_presign_fixture(t):
    ensure_stamped(t, "uploads/photo.jpg", "small.jpg")
    resp, body = presign_call(t, fixture(t, "presign_http_v2.json"))
    expect_eq("status", 200, resp["statusCode"])
    expect_eq("key", PREFIX + "uploads/photo.jpg", body["key"])


def case_presign_errors(t):
    resp, body = presign_call(t, http_api_v2({"key": "never-stamped.jpg"}))
    expect_eq("status for a missing object", 404, resp["statusCode"])
    expect("error" in body, "404 body", "an error", body)
    expect_eq("CORS header on 404", "*", resp["headers"].get("Access-Control-Allow-Origin"))
    resp, body = presign_call(t, http_api_v2({}))
    expect_eq("without key", (400, {"error": "missing key"}), (resp["statusCode"], body))
    resp, body = presign_call(t, http_api_v2({"key": "k" * 1100}))
    expect_eq("with a key too long", (400, {"error": "key too long"}), (resp["statusCode"], body))
    for bad in ("0", "abc", "-5", "12x", "1.5"):
        resp, body = presign_call(t, http_api_v2({"key": "in/photo.jpg", "expires": bad}))
        expect_eq("with expires=" + bad, (400, {"error": "bad expires"}), (resp["statusCode"], body))
    resp, body = presign_call(t, http_api_v2({"key": "in/photo.jpg", "bucket": "elsewhere"}))
    expect_eq("with bucket= when not allowed", (400, {"error": "the bucket parameter is not allowed"}),
              (resp["statusCode"], body))
    resp, body = presign_call(t, "not an API Gateway request")
    expect_eq("with a non-object event", 400, resp["statusCode"])


def case_presign_bad_configuration(t):
    event = os.path.join(t.tmp, "presign-init.json")
    with open(event, "w") as f:
        json.dump(http_api_v2({"key": "x.jpg"}), f)
    for env, var in (({}, "SPARTA_BUCKET"), ({"SPARTA_BUCKET": "b", "SPARTA_PRESIGN_EXPIRES": "0"}, "SPARTA_PRESIGN_EXPIRES"),
                     ({"SPARTA_BUCKET": "b", "SPARTA_PRESIGN_EXPIRES": "604801"}, "SPARTA_PRESIGN_EXPIRES"),
                     ({"SPARTA_BUCKET": "b", "SPARTA_ALLOW_BUCKET_PARAM": "yes"}, "SPARTA_ALLOW_BUCKET_PARAM"),
                     ({"SPARTA_BUCKET": "b", "SPARTA_OUTPUT_PREFIX": ""}, "SPARTA_OUTPUT_PREFIX")):
        e = dict(aws_env())
        e.update(env)
        b = Bootstrap(t.presign, t.tmp, None, ["--event", event], **e)
        expect_eq("exit status with %s" % env, 1, b.wait(60))
        doc = json.loads(b.stdout)
        expect_eq("errorType with %s" % env, "Runtime.ConfigInvalid", doc.get("errorType"))
        expect(var in doc.get("errorMessage", ""), "errorMessage with %s" % env, "naming " + var, doc)


def case_presign_payload_v1_and_runtime_api(t):
    v1 = {"resource": "/link", "path": "/link", "httpMethod": "GET", "headers": {},
          "queryStringParameters": {"key": "in/photo.jpg", "bucket": t.bucket},
          "requestContext": {"requestId": "id", "stage": "prod"}, "body": None, "isBase64Encoded": False}
    ensure_stamped(t, "in/photo.jpg", "photo.jpg")
    emu = Emulator(t.tmp)
    e = dict(aws_env())
    e.update({"SPARTA_ALLOW_BUCKET_PARAM": "1", "SPARTA_PRESIGN_EXPIRES": "120"})
    b = Bootstrap(t.presign, t.tmp, emu.api, **e)
    try:
        rec = answer(emu, v1)
        expect_eq("answer kind", "response", rec["kind"])
        resp = json.loads(rec["body"])
        expect_eq("status", 200, resp["statusCode"])
        body = json.loads(resp["body"])
        expect_eq("expires_in (SPARTA_PRESIGN_EXPIRES)", 120, body["expires_in"])
        expect(body["expires_at"] > time.time() + 100, "expires_at", "about now + 120", body["expires_at"])
        with urllib.request.urlopen(body["url"], timeout=30) as r:
            expect_eq("URL answer", 200, r.status)
        rec = answer(emu, http_api_v2({"key": "in/photo.jpg", "bucket": t.bucket, "expires": "600"}))
        resp = json.loads(rec["body"])
        expect_eq("status with expires over the maximum", 200, resp["statusCode"])
        expect_eq("expires_in cut to SPARTA_PRESIGN_EXPIRES", 120, json.loads(resp["body"])["expires_in"])
    finally:
        b.stop()
        emu.stop()


OWN = [case_transient_fault_mid_batch, case_summary_lists_100_records, case_memory_flat, case_bad_configuration_fails_init, case_custom_configuration,
       case_tiles_and_text,
       case_pixel_budget, case_local_invoke]
PRESIGN = [case_presign_link, case_presign_fixture, case_presign_errors, case_presign_bad_configuration, case_presign_payload_v1_and_runtime_api]


def sqs_batch(*s3docs):
    """One SQS message per S3 event document, message ids msg-0, msg-1, ..."""
    recs = []
    for i, doc in enumerate(s3docs):
        rec = sqs_event(doc)["Records"][0]
        rec["messageId"] = "msg-%d" % i
        recs.append(rec)
    return {"Records": recs}


def case_sqs_access_denied_listed(t):
    """A PUT refused with AccessDenied (nothing a retry fixes, a person can)
    lists exactly that message in batchItemFailures, so the queue's redrive
    policy moves it to the DLQ; the other messages are done."""
    proxy = FaultProxy(t.tmp)
    emu = Emulator(t.tmp, "--timeout-ms", "60000")
    keys = ["sqsd/ok0.jpg", "sqsd/denied.jpg", "sqsd/ok2.jpg"]
    for k in keys:
        s3_put(t.bucket, k, os.path.join(t.samples, "small.jpg"))
    boot = Bootstrap(t.imager, t.tmp, emu.api, **dict(aws_env(proxy.url)))
    try:
        proxy.control("set?mode=denied&count=1000&match=/%s&method=PUT" % (PREFIX + "sqsd/denied.jpg"))
        doc = summary(answer(emu, sqs_batch(*[s3_event(s3_record(t.bucket, k)) for k in keys])))
        expect_eq("batchItemFailures", [{"itemIdentifier": "msg-1"}], doc.get("batchItemFailures"))
        expect_eq("summary", c(stamped=2, failed=1), counts(doc))
        check_absent(t.bucket, PREFIX + "sqsd/denied.jpg")
    finally:
        boot.stop()
        emu.stop()
        proxy.stop()


def case_trace_header_and_checksums(t):
    """Through a recording proxy: inside Lambda every S3 request of an
    invocation carries its trace id, unsigned; PUTs carry a CRC-32C the proxy
    checks against the body; a GET body with one byte flipped under a correct
    x-amz-checksum-crc32 is retried, never stamped; with both switches
    when_required no checksum header goes out; no variable, no trace header."""
    proxy = FaultProxy(t.tmp)
    proxy.control("record?on=1")
    emu = Emulator(t.tmp, "--timeout-ms", "60000")
    s3_put(t.bucket, "trace/a.jpg", os.path.join(t.samples, "small.jpg"))
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    runs = (({"AWS_LAMBDA_FUNCTION_NAME": "imager"}, trace), ({}, None),
            ({"AWS_LAMBDA_FUNCTION_NAME": "imager", "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
              "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}, trace))
    try:
        for extra, want_trace in runs:
            env = dict(aws_env(proxy.url))
            env.update(extra)
            boot = Bootstrap(t.imager, t.tmp, emu.api, **env)
            try:
                run([S3, "rm", "s3://%s/%strace/a.jpg" % (t.bucket, PREFIX)])
                proxy.control("reset")
                ev = s3_event(s3_record(t.bucket, "trace/a.jpg"))
                doc = summary(emu.result(emu.event(ev, trace_id=trace), timeout=120)["final"])
                expect_eq("summary with %s" % extra, c(stamped=1), counts(doc))
                log = json.loads(proxy.control("log"))
                expect(log, "requests seen by the proxy", "some", log)
                expect_eq("X-Amzn-Trace-Id with %s" % extra, [want_trace] * len(log), [r["trace"] for r in log])
                expect_eq("signed X-Amzn-Trace-Id", [], [r for r in log if "x-amzn-trace-id" in r["signed"]])
                puts = [r for r in log if r["method"] == "PUT"]
                if "AWS_REQUEST_CHECKSUM_CALCULATION" in extra:
                    expect_eq("checksum headers when_required", [], [r for r in log if r["checksums"]])
                else:
                    expect_eq("PUT checksums right", [True] * len(puts), [r["crc32c_ok"] for r in puts])
                    gets = [r for r in log if r["method"] in ("GET", "HEAD")]
                    expect_eq("checksum mode asked", [{"x-amz-checksum-mode": "ENABLED"}] * len(gets),
                              [r["checksums"] for r in gets])
            finally:
                boot.stop()
        env = dict(aws_env(proxy.url))
        boot = Bootstrap(t.imager, t.tmp, emu.api, **env)
        try:
            run([S3, "rm", "s3://%s/%strace/a.jpg" % (t.bucket, PREFIX)])
            proxy.control("set?mode=flip&count=1000&match=/trace/a.jpg&method=GET")
            rec = emu.result(emu.event(s3_event(s3_record(t.bucket, "trace/a.jpg"))), timeout=120)["final"]
            expect_eq("answer with every GET body flipped", "error", rec["kind"])
            expect_eq("flipped GET bodies: never stamped", None, s3_head(t.bucket, PREFIX + "trace/a.jpg"))
            gets = [r for r in json.loads(proxy.control("log")) if r["method"] == "GET"]
            expect(len(gets) >= 3, "GETs of the flipped object", ">= 3 (retried)", len(gets))
            expect("checksum" in boot.log(), "imager log", "a checksum mismatch", boot.log()[-800:])
        finally:
            boot.stop()
    finally:
        emu.stop()
        proxy.stop()


def case_four_workers_under_tsan(t):
    """AWS_LAMBDA_MAX_CONCURRENCY=4, the ThreadSanitizer build: 12 events at
    once, one key's every S3 request answered 503; only that invocation
    fails (TransientS3Error), the other 11 are stamped, nothing races."""
    tsan = os.path.join(os.path.dirname(t.plain or t.imager), "bootstrap-tsan")
    if not os.path.exists(tsan):
        raise Skip("no ThreadSanitizer build (make build/imager/bootstrap-tsan)")
    proxy = FaultProxy(t.tmp)
    emu = Emulator(t.tmp, "--timeout-ms", "120000")
    keys = ["workers/p%d.jpg" % i for i in range(12)]
    for k in keys:
        s3_put(t.bucket, k, os.path.join(t.samples, "small.jpg"))
    env = dict(aws_env(proxy.url))
    env["AWS_LAMBDA_MAX_CONCURRENCY"] = "4"
    boot = Bootstrap(tsan, t.tmp, emu.api, **env)
    try:
        proxy.control("set?mode=slowdown&count=100000&match=/workers/p5.jpg")
        ids = [emu.event(s3_event(s3_record(t.bucket, k))) for k in keys]
        recs = [emu.result(i, timeout=300)["final"] for i in ids]
        kinds = [r["kind"] for r in recs]
        expect_eq("answers", ["response"] * 5 + ["error"] + ["response"] * 6, kinds)
        expect_eq("the failed one", "Function.TransientS3Error", recs[5]["errorTypeHeader"])
        expect(emu.stats()["maxInFlight"] >= 2, "invocations at once", ">= 2", emu.stats())
        for k in keys[:5] + keys[6:]:
            check_stamped(t, t.bucket, k, "small.jpg")
        boot.stop()
        log = boot.log()
        expect("ThreadSanitizer" not in log, "ThreadSanitizer reports", "none",
               log[log.find("WARNING: ThreadSanitizer"):][:1500])
    finally:
        boot.stop()
        emu.stop()
        proxy.stop()


def case_presign_5xx_names_no_bucket(t):
    """A 5xx answer to a public caller says no more than it must: a generic
    reason and the Lambda request id; S3's text, the bucket, the key in the log."""
    resp, body = presign_call(t, http_api_v2({"key": "in/photo.jpg"}), AWS_SECRET_ACCESS_KEY="wrong" * 8)
    expect_eq("status with a wrong secret", 502, resp["statusCode"])
    expect_eq("error", "storage error", body.get("error"))
    expect("requestId" in body, "body", "a requestId", body)
    expect(t.bucket not in resp["body"] and "photo" not in resp["body"], "5xx body", "no bucket or key",
           resp["body"])


def case_sqs_partial_batch(t):
    """Through SQS, a key whose every request meets 503 is the only message
    in batchItemFailures; a permanent problem (not an image) is logged, not
    listed; the invocation succeeds and the other messages are done."""
    proxy = FaultProxy(t.tmp)
    emu = Emulator(t.tmp, "--timeout-ms", "60000")
    keys = ["sqs/ok0.jpg", "sqs/fail.jpg", "sqs/ok2.jpg", "sqs/notimage.txt"]
    for k in keys:
        s3_put(t.bucket, k, os.path.join(t.samples, "notimage.txt" if k.endswith(".txt") else "small.jpg"))
    boot = Bootstrap(t.imager, t.tmp, emu.api, **dict(aws_env(proxy.url)))
    try:
        proxy.control("set?mode=slowdown&count=1000&match=/sqs/fail.jpg")
        rec = answer(emu, sqs_batch(*[s3_event(s3_record(t.bucket, k)) for k in keys]))
        doc = summary(rec)
        expect_eq("batchItemFailures", [{"itemIdentifier": "msg-1"}], doc.get("batchItemFailures"))
        expect_eq("summary", c(stamped=2, skipped=1, failed=1), counts(doc))
        for k in ("sqs/ok0.jpg", "sqs/ok2.jpg"):
            check_stamped(t, t.bucket, k, "small.jpg")
        check_absent(t.bucket, PREFIX + "sqs/fail.jpg")
        proxy.control("reset")
        doc = summary(answer(emu, sqs_batch(s3_event(s3_record(t.bucket, "sqs/fail.jpg")))))
        expect_eq("batchItemFailures of the redelivery", [], doc.get("batchItemFailures"))
        check_stamped(t, t.bucket, "sqs/fail.jpg", "small.jpg")
    finally:
        boot.stop()
        emu.stop()
        proxy.stop()


def case_deadline(t):
    """A batch that needs more than the time left: the answer comes before
    the deadline, what was stamped is stamped, and the rest is listed (SQS)
    or counted in a retryable error (direct)."""
    keys = ["deadline/%02d.jpg" % i for i in range(24)]
    # Every S3 request held 100 ms by the proxy: a record makes at least four
    # (HEADs, GET, PUT), so 24 take ~10 s however fast the stamp is, and the
    # first ones still fit in 3 s, also under the sanitizers.
    for k in keys:
        s3_put(t.bucket, k, os.path.join(t.samples, "small.jpg"))
    proxy = FaultProxy(t.tmp, delay_ms=100)
    emu = Emulator(t.tmp, "--timeout-ms", "60000")
    boot = Bootstrap(t.imager, t.tmp, emu.api, **dict(aws_env(proxy.url)))
    try:
        deadline_batches(t, emu, keys)
    finally:
        boot.stop()
        emu.stop()
        proxy.stop()


def deadline_batches(t, emu, keys):
    """case_deadline's two envelopes through the slowed imager."""
    for envelope in ("sqs", "direct"):
        for k in keys:
            run([S3, "rm", "s3://%s/%s%s" % (t.bucket, PREFIX, k)])
        docs = [s3_event(s3_record(t.bucket, k)) for k in keys]
        event = sqs_batch(*docs) if envelope == "sqs" else s3_event(*[d["Records"][0] for d in docs])
        deadline = int(time.time() * 1000) + 3000
        rec = emu.result(emu.event(event, deadline_ms=deadline), timeout=120)["final"]
        expect(rec["time"] * 1000 < deadline, envelope + " answer time", "before the deadline %d" % deadline,
               "%d ms after it" % (rec["time"] * 1000 - deadline))
        done = [k for k in keys if s3_head(t.bucket, PREFIX + k) is not None]
        expect(0 < len(done) < len(keys), envelope + " stamped", "some but not all of %d" % len(keys), len(done))
        expect_eq(envelope + " stamped in order", keys[:len(done)], done)
        if envelope == "sqs":
            doc = summary(rec)
            expect_eq("batchItemFailures", [{"itemIdentifier": "msg-%d" % i} for i in range(len(done), len(keys))],
                      doc["batchItemFailures"])
        else:
            expect_eq("answer kind", "error", rec["kind"])
            body = json.loads(rec["body"])
            expect("%d of %d records failed" % (len(keys) - len(done), len(keys)) in body["errorMessage"] and
                   "deadline" in body["errorMessage"], "errorMessage", "N of 24 records failed ... deadline",
                   body["errorMessage"])


def batch_invocation(schema, bucket, tasks):
    """An S3 Batch Operations invocation; tasks = [(task id, key, version id or None)]."""
    out = []
    for tid, key, version in tasks:
        task = {"taskId": tid, "s3Key": urllib.parse.quote(key, safe="/"), "s3VersionId": version}
        task.update({"s3BucketArn": "arn:aws:s3:::" + bucket} if schema == "1.0" else {"s3Bucket": bucket})
        out.append(task)
    job = {"id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce"}
    if schema == "2.0":
        job["userArguments"] = {}
    return {"invocationSchemaVersion": schema, "invocationId": "inv-" + schema, "job": job, "tasks": out}


def botocore_client():
    try:
        import botocore.session
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        import botocore.session
    e = aws_env()
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=e["AWS_ENDPOINT_URL_S3"], region_name=e["AWS_REGION"],
        aws_access_key_id=e["AWS_ACCESS_KEY_ID"], aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"])


def case_batch_operations(t):
    """One result per task, both schemas: Succeeded (stamped; skipped by the
    loop guard), PermanentFailure (not an image; key missing; no such
    version), TemporaryFailure (a GET failing with 503); a versioned GET on
    a bucket with versioning enabled."""
    bucket = new_bucket("batch")
    s3 = botocore_client()
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with open(os.path.join(t.samples, "small.jpg"), "rb") as f:
        v1 = s3.put_object(Bucket=bucket, Key="b/photo 1+%.jpg", Body=f.read())["VersionId"]
    for k, sample in (("b/fail.jpg", "small.jpg"), ("b/notimage.txt", "notimage.txt"), (PREFIX + "b/x.jpg", "small.jpg")):
        s3_put(bucket, k, os.path.join(t.samples, sample))
    proxy = FaultProxy(t.tmp)
    emu = Emulator(t.tmp, "--timeout-ms", "60000")
    boot = Bootstrap(t.imager, t.tmp, emu.api, **dict(aws_env(proxy.url)))
    want = [("t-ok", "b/photo 1+%.jpg", v1, "Succeeded", "stamped"),
            ("t-guard", PREFIX + "b/x.jpg", None, "Succeeded", "skipped: key starts with"),
            ("t-notimage", "b/notimage.txt", None, "PermanentFailure", "skipped"),
            ("t-missing", "b/never-uploaded.jpg", None, "PermanentFailure", "key missing"),
            ("t-noversion", "b/photo 1+%.jpg", "not-a-version", "PermanentFailure", "skipped"),
            ("t-503", "b/fail.jpg", None, "TemporaryFailure", "failed: GET")]
    try:
        for schema in ("1.0", "2.0"):
            run([S3, "rm", "s3://%s/%sb/photo 1+%%.jpg" % (bucket, PREFIX)])
            proxy.control("set?mode=slowdown&count=1000&method=GET&match=/b/fail.jpg")
            rec = answer(emu, batch_invocation(schema, bucket, [(w[0], w[1], w[2]) for w in want]))
            proxy.control("reset")
            doc = summary(rec)
            expect_eq(schema + " header", {"invocationSchemaVersion": schema, "treatMissingKeysAs": "PermanentFailure",
                                           "invocationId": "inv-" + schema},
                      {k: doc.get(k) for k in ("invocationSchemaVersion", "treatMissingKeysAs", "invocationId")})
            got = [(r["taskId"], r["resultCode"]) for r in doc["results"]]
            expect_eq(schema + " result codes", [(w[0], w[3]) for w in want], got)
            for w, r in zip(want, doc["results"]):
                expect(r["resultString"].startswith(w[4]) or w[4] in r["resultString"], schema + " " + w[0] + " resultString",
                       w[4] + "...", r["resultString"])
            check_stamped(t, bucket, "b/photo 1+%.jpg", "small.jpg")
            check_absent(bucket, PREFIX + "b/fail.jpg")
    finally:
        boot.stop()
        emu.stop()
        proxy.stop()


OWN += [case_sqs_partial_batch, case_sqs_access_denied_listed, case_presign_5xx_names_no_bucket,
        case_trace_header_and_checksums, case_four_workers_under_tsan, case_deadline,
        case_batch_operations]


class T:
    pass


def main():
    if len(sys.argv) < 3:
        print("usage: it_imager.py IMAGER PRESIGN [FILTER]")
        return 2
    t = T()
    t.imager, t.presign = sys.argv[1], sys.argv[2]
    t.plain = os.environ.get("IMAGER_PLAIN", "")
    flt = sys.argv[3] if len(sys.argv) > 3 else ""
    t.tmp = tempfile.mkdtemp(prefix="imager-it-")
    t.samples = os.path.join(t.tmp, "samples")
    passed = failed = skipped = 0
    run([MKSAMPLES, t.samples])
    t.bucket = new_bucket("src")
    t.emu = Emulator(t.tmp, "--timeout-ms", "60000")   # the deadline has its own case
    t.boot = Bootstrap(t.imager, t.tmp, t.emu.api, **aws_env())
    # the shared cases once more with every S3 event wrapped in SQS, one message per record
    cases = SHARED + [("sqs", case) for case in SHARED] + OWN + (PRESIGN if os.access(t.presign, os.X_OK) else [])
    if not os.access(t.presign, os.X_OK):
        print("# %s missing: presign cases skipped" % t.presign)
        skipped += len(PRESIGN)
    try:
        for case in cases:
            ENVELOPE["sqs"] = isinstance(case, tuple)
            case = case[1] if isinstance(case, tuple) else case
            name = case.__name__[5:] + ("_through_sqs" if ENVELOPE["sqs"] else "")
            if flt and flt not in name:
                continue
            try:
                case(t)
                print("ok " + name)
                passed += 1
            except Skip as e:
                print("skip %s: %s" % (name, e))
                skipped += 1
            except Failure as e:
                print("FAIL %s: %s" % (name, e))
                failed += 1
            except Exception:
                print("FAIL %s: expected no exception got %s" % (name, traceback.format_exc().replace("\n", " | ")))
                failed += 1
            sys.stdout.flush()
    finally:
        t.boot.stop()
        t.emu.stop()
        if failed:
            print("# logs kept in " + t.tmp)
            print("# shared imager log tail: " + short(t.boot.log()[-2000:]))
        else:
            shutil.rmtree(t.tmp, ignore_errors=True)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
