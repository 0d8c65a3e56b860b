#!/usr/bin/python3
"""SPARTA_RULES end to end (issue 25): the imager bootstrap behind
tests/it/emulator.py against the real radosgw, with a rules document in S3:

    press/  its own stamp (s3://, a red square) at gravity nw
    raw/    skip
    shop/   output prefix "public/" in another bucket
    legal/  a text stamp in its own font
    (other keys: the defaults, xformed_ in the source bucket)

Each prefix is stamped, deleted and converges (a stale event after an
overwrite, a stale create after a delete) where its rule says; copies
under any rule's output prefix are guarded; bad documents fail init naming
SPARTA_RULES, the rule and the field.

    tests/it/it_rules.py IMAGER_BOOTSTRAP
"""
import io
import json
import os
import shutil
import sys
import tempfile
import traceback

from PIL import Image, ImageChops

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from it_lambda import Bootstrap, Emulator, Failure, expect, expect_eq  # noqa: E402
from it_imager import (S3, aws_env, c, check_absent, counts, new_bucket, run, s3_event, s3_get,  # noqa: E402
                       s3_head, s3_put, s3_record)

RED = (255, 0, 0)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"   # fonts-dejavu-core, which the build's font subset needs


def png_bytes(im):
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def photo(path, shade):
    """An RGB gradient, different per version (shade)."""
    im = Image.new("RGB", (200, 150))
    im.putdata([((x + shade) % 256, (y * 2) % 256, shade % 256) for y in range(150) for x in range(200)])
    im.save(path, "PNG")


class T:
    pass


def answer(t, *records):
    rec = t.emu.result(t.emu.event(s3_event(*records)), timeout=120)["final"]
    expect_eq("answer kind", "response", rec["kind"])
    return json.loads(rec["body"])


def pixels(t, bucket, key):
    path, _ = s3_get(bucket, key, t.tmp)
    return Image.open(path).convert("RGB")


def check_copy(t, bucket, out_key, src_key, corner):
    """The copy exists, carries the original's ETag, and shows its stamp at corner."""
    head = s3_head(bucket, out_key)
    expect(head is not None, "copy " + out_key, "to exist", "404")
    expect_eq(out_key + " source etag", s3_head(t.bucket, src_key)["etag"].strip('"'),
              head.get("meta-sparta-source-etag"))
    im, orig = pixels(t, bucket, out_key), pixels(t, t.bucket, src_key)
    box = ImageChops.difference(im, orig).getbbox()
    expect(box is not None, out_key + " pixels", "stamped", "identical to the original")
    if corner == "nw":
        expect_eq(out_key + " nw pixel (the rule's red stamp)", RED, im.getpixel((3, 3)))
        expect(box[2] <= 100 and box[3] <= 75, out_key + " changed pixels", "in the nw quarter", box)
    else:
        expect(box[0] >= 100 and box[1] >= 75, out_key + " changed pixels", "in the se quarter", box)


def case_each_prefix_follows_its_rule(t):
    keys = ("press/a.png", "raw/b.png", "shop/c.png", "other/d.png", "legal/e.png")
    for key in keys:
        s3_put(t.bucket, key, t.v1)
    doc = answer(t, *[s3_record(t.bucket, k) for k in keys])
    expect_eq("summary", c(stamped=4, skipped=1), counts(doc))
    expect_eq("outputs", ["xformed_press/a.png", None, "public/shop/c.png", "xformed_other/d.png",
                          "xformed_legal/e.png"], [r.get("output") for r in doc["records"]])
    text = ImageChops.difference(pixels(t, t.bucket, "xformed_legal/e.png"), pixels(t, t.bucket, "legal/e.png"))
    box = text.crop((0, 0, 100, 75)).getbbox()
    expect(box is not None, "xformed_legal/e.png", "the rule's text in the nw quarter", "nothing drawn there")
    check_copy(t, t.bucket, "xformed_press/a.png", "press/a.png", "nw")
    check_copy(t, t.out, "public/shop/c.png", "shop/c.png", "se")
    check_copy(t, t.bucket, "xformed_other/d.png", "other/d.png", "se")
    for bucket, key in ((t.bucket, "xformed_raw/b.png"), (t.bucket, "xformed_shop/c.png"),
                        (t.bucket, "public/shop/c.png"), (t.out, "xformed_press/a.png")):
        check_absent(bucket, key)


def case_copies_under_any_output_prefix_are_guarded(t):
    s3_put(t.bucket, "public/shop/c.png", t.v1)    # as if the output bucket were the source bucket
    s3_put(t.bucket, "xformed_other/e.png", t.v1)
    doc = answer(t, s3_record(t.bucket, "public/shop/c.png"), s3_record(t.bucket, "xformed_other/e.png"))
    expect_eq("summary", c(skipped=2), counts(doc))
    check_absent(t.bucket, "xformed_public/shop/c.png")
    check_absent(t.bucket, "xformed_xformed_other/e.png")
    run([S3, "rm", "s3://%s/public/shop/c.png" % t.bucket])
    run([S3, "rm", "s3://%s/xformed_other/e.png" % t.bucket])


def case_converges_per_rule(t):
    """An overwrite delivered as a stale event: the copy follows the current version, where the rule puts it."""
    places = [("press/a.png", t.bucket, "xformed_press/a.png", "nw"), ("shop/c.png", t.out, "public/shop/c.png", "se"),
              ("other/d.png", t.bucket, "xformed_other/d.png", "se")]
    for key, _, _, _ in places:
        s3_put(t.bucket, key, t.v2)
    doc = answer(t, *[s3_record(t.bucket, k) for k, _, _, _ in places] + [s3_record(t.bucket, "raw/b.png")])
    expect_eq("summary", c(stamped=3, skipped=1), counts(doc))
    for key, bucket, out_key, corner in places:
        check_copy(t, bucket, out_key, key, corner)
    check_absent(t.bucket, "xformed_raw/b.png")


def case_deletion_finds_the_rules_copy(t):
    keys = ["press/a.png", "raw/b.png", "shop/c.png", "other/d.png", "legal/e.png"]
    for k in keys:
        run([S3, "rm", "s3://%s/%s" % (t.bucket, k)])
    # a stale create first (the original is gone: the copy goes), then the removals
    doc = answer(t, s3_record(t.bucket, "shop/c.png"),
                 *[s3_record(t.bucket, k, "ObjectRemoved:Delete") for k in keys])
    expect_eq("summary", c(deleted=5, skipped=1), counts(doc))
    for bucket, key in ((t.bucket, "xformed_press/a.png"), (t.out, "public/shop/c.png"), (t.bucket, "xformed_legal/e.png"),
                        (t.bucket, "xformed_other/d.png"), (t.bucket, "xformed_shop/c.png")):
        check_absent(bucket, key)


BAD = [
    ('[{"prefix": "a/"}, {"prefix": "b/", "gravty": "n"}]', ['rules[1] (prefix "b/")', 'unknown field "gravty"']),
    ('[{"prefix": "b/", "opacity": 3}]', ['rules[0] (prefix "b/")', 'field "opacity"', "got '3'"]),
    ('[{"prefix": "b/", "metadata": "all"}]', ['field "metadata"', "keep, strip-gps or strip"]),
    ('[{"prefix": "b/", "stamp": "/nonexistent/s.png"}]', ['rules[0] (prefix "b/")', 'field "stamp"']),
    # a text without a "font" takes the embedded Latin-1 font, which has no CJK
    ('[{"prefix": "b/", "text": "(c) \u4e2d"}]', ['rules[0] (prefix "b/")', "no glyph for U+4E2D"]),
    ('[{"prefix": "b/", "text": "x", "font": "/nonexistent/f.ttf"}]', ['rules[0] (prefix "b/")', 'field "font"']),
    ('[{"prefix": "b/", "tile": "-3"}]', ['rules[0] (prefix "b/")', 'field "tile"']),
    ('{"prefix": "b/"}', ["JSON array"]),
    ('[{"prefix": "b/",]', ["not valid JSON"]),
]


def init_fails(t, rules_env, words):
    event = os.path.join(t.tmp, "test-event.json")
    with open(event, "w") as f:
        json.dump({"Event": "s3:TestEvent", "Service": "Amazon S3"}, f)
    e = dict(aws_env())
    e["SPARTA_RULES"] = rules_env
    b = Bootstrap(t.imager, t.tmp, None, ["--event", event], **e)
    expect_eq("exit status with SPARTA_RULES=" + rules_env, 1, b.wait(60))
    doc = json.loads(b.stdout)
    expect_eq("errorType", "Runtime.ConfigInvalid", doc.get("errorType"))
    for w in ["SPARTA_RULES"] + words:
        expect(w in doc.get("errorMessage", ""), "errorMessage", "naming " + w, doc.get("errorMessage"))


def case_bad_rules_fail_init(t):
    for i, (text, words) in enumerate(BAD):
        path = os.path.join(t.tmp, "bad-%d.json" % i)
        with open(path, "w") as f:
            f.write(text)
        init_fails(t, path, words)
    init_fails(t, os.path.join(t.tmp, "missing.json"), [])
    init_fails(t, "s3://%s/no-such-rules.json" % t.bucket, [])
    # through the Runtime API: /init/error naming the variable
    emu = Emulator(t.tmp)
    e = dict(aws_env())
    e["SPARTA_RULES"] = os.path.join(t.tmp, "bad-0.json")
    b = Bootstrap(t.imager, t.tmp, emu.api, **e)
    try:
        expect(b.wait(30) not in (0, None), "exit status after init failure", "non-zero", None)
        status, rec = emu.call("GET", "/control/init-error?timeout=5")
        expect_eq("/init/error recorded", 200, status)
        expect("SPARTA_RULES" in rec["body"] and "gravty" in rec["body"], "init error body",
               "naming SPARTA_RULES and the field", rec["body"])
    finally:
        b.stop()
        emu.stop()


CASES = [case_each_prefix_follows_its_rule, case_copies_under_any_output_prefix_are_guarded,
         case_converges_per_rule, case_deletion_finds_the_rules_copy, case_bad_rules_fail_init]


def setup(t):
    t.v1, t.v2 = os.path.join(t.tmp, "v1.png"), os.path.join(t.tmp, "v2.png")
    photo(t.v1, 10)
    photo(t.v2, 120)
    stamp = os.path.join(t.tmp, "red.png")
    with open(stamp, "wb") as f:
        f.write(png_bytes(Image.new("RGBA", (40, 40), RED + (255,))))
    t.bucket, t.out = new_bucket("rules"), new_bucket("rulesout")
    s3_put(t.bucket, "assets/red.png", stamp)
    rules = [{"prefix": "press/", "stamp": "s3://%s/assets/red.png" % t.bucket, "gravity": "nw", "scale": 0.2},
             {"prefix": "raw/", "skip": True},
             {"prefix": "shop/", "output_prefix": "public/", "output_bucket": t.out, "metadata": "strip"},
             {"prefix": "legal/", "text": "(c) ACME {year}", "font": FONT, "text-gravity": "nw", "text-size": 0.2}]
    path = os.path.join(t.tmp, "rules.json")
    with open(path, "w") as f:
        json.dump(rules, f)
    s3_put(t.bucket, "config/rules.json", path)
    t.emu = Emulator(t.tmp, "--timeout-ms", "60000")
    env = dict(aws_env())
    env["SPARTA_RULES"] = "s3://%s/config/rules.json" % t.bucket
    t.boot = Bootstrap(t.imager, t.tmp, t.emu.api, **env)


def main():
    t = T()
    t.imager = sys.argv[1]
    t.tmp = tempfile.mkdtemp(prefix="rules-it-")
    passed = failed = 0
    setup(t)
    try:
        for case in CASES:
            name = case.__name__[5:]
            try:
                case(t)
                print("ok " + name)
                passed += 1
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
            print("# logs kept in %s; imager log tail: %s" % (t.tmp, t.boot.log()[-2000:]))
        else:
            shutil.rmtree(t.tmp, ignore_errors=True)
    print("%d passed, %d failed, 0 skipped" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
