#!/usr/bin/python3
"""The metadata policy on real files (issue 25), read back two ways.

Pillow makes a JPEG and a PNG whose EXIF holds a GPS IFD (0x8825), an
orientation, Make, Artist and Copyright, with an ICC profile, and an XMP
packet with exif:GPS* properties in the JPEG. build/stamp stamps them under
each policy (JPEG baseline and progressive in the compressed domain, and
with --recode); each output
is read back with Pillow and with the project's parser (build/test/it_metadata).
   it_metadata.py STAMP IT_METADATA WORKDIR"""
import hashlib
import io
import os
import subprocess
import sys

from PIL import Image, ImageCms

STAMP, DUMP, WORK = sys.argv[1:4]
results = {"passed": 0, "failed": 0}

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
GPS = {1: "N", 2: (47.0, 11.0, 30.5), 3: "E", 4: (8.0, 32.0, 10.0)}
ARTIST, COPYRIGHT = "Ann Artist", "(c) 2026 Ann Artist"
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
       b'xmlns:dc="http://purl.org/dc/elements/1.1/" exif:GPSLatitude="47,11.5N" exif:ExposureTime="1/60">'
       b'<exif:GPSLongitude>8,32.17E</exif:GPSLongitude><dc:creator>Ann Artist</dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta>')


def check(name, ok, expected="", got=""):
    if ok:
        results["passed"] += 1
        print("ok   " + name)
    else:
        results["failed"] += 1
        print("FAIL %s\n    expected: %s\n    got:      %s" % (name, expected, got))


def exif_bytes(endian):
    e = Image.Exif()
    e.endian = endian
    e[0x0112] = 6
    e[0x010F] = "Canon"
    e[0x013B] = ARTIST
    e[0x8298] = COPYRIGHT
    e[0x8825] = GPS
    return e.tobytes()


def photo():
    im = Image.new("RGB", (320, 240))
    im.putdata([(x % 256, y % 256, (x * y) % 256) for y in range(240) for x in range(320)])
    return im


def with_xmp(jpeg):
    """The JPEG with an APP1 XMP segment after its first APPn segment."""
    seg = b"http://ns.adobe.com/xap/1.0/\0" + XMP
    at = 2 + 2 + int.from_bytes(jpeg[4:6], "big")
    return jpeg[:at] + b"\xff\xe1" + (len(seg) + 2).to_bytes(2, "big") + seg + jpeg[at:]


def segments(jpeg):
    """(marker, payload) of every segment before the first SOS, and the bytes from the SOS on."""
    pos, out = 2, []
    while jpeg[pos] == 0xFF and jpeg[pos + 1] != 0xDA:
        n = int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        out.append((jpeg[pos + 1], jpeg[pos + 4:pos + 2 + n]))
        pos += 2 + n
    return out, jpeg[pos:]


def dump(path):
    r = subprocess.run([DUMP, path], capture_output=True, text=True, check=True)
    return dict(line.split(" ", 1) for line in r.stdout.splitlines())


def check_output(name, path, policy, fmt):
    im = Image.open(path)
    exif = im.getexif()
    own = dump(path)
    tags = set(exif.keys())
    own_tags = set(int(t, 16) for t in own["ifd0"].split(",") if t)
    raw = open(path, "rb").read()
    check(name + "_icc_identical", im.info.get("icc_profile") == ICC, "the source's %d bytes" % len(ICC),
          len(im.info.get("icc_profile") or b""))
    check(name + "_icc_identical_own_parser", own["icc_sha256"] == hashlib.sha256(ICC).hexdigest(),
          hashlib.sha256(ICC).hexdigest(), own["icc_sha256"])
    check(name + "_orientation_kept", exif.get(0x0112) == 6 and own["orientation"] == "6", "6 and 6",
          "%s and %s" % (exif.get(0x0112), own["orientation"]))
    check(name + "_tags_agree", tags == own_tags, sorted(tags), sorted(own_tags))
    gps = exif.get_ifd(0x8825)
    if policy == "keep":
        check(name + "_gps_kept", gps.get(2) == GPS[2], GPS[2], gps)
    else:
        check(name + "_gps_gone", 0x8825 not in tags and not gps, "no 0x8825, no GPS IFD",
              "tags %s, GPS %s" % (sorted(tags), gps))
        check(name + "_gps_gone_own_parser", 0x8825 not in own_tags, "no 0x8825", own["ifd0"])
        check(name + "_no_xmp_gps", b"exif:GPS" not in raw, "no exif:GPS in the file", "found")
    if policy == "strip":
        check(name + "_strip_keeps_three", tags == {0x0112, 0x013B, 0x8298}, [0x0112, 0x013B, 0x8298],
              sorted(tags))
        check(name + "_no_xmp", b"x:xmpmeta" not in raw, "no XMP", "found")
    else:
        check(name + "_make_kept", exif.get(0x010F) == "Canon", "Canon", exif.get(0x010F))
    check(name + "_artist_copyright_kept", exif.get(0x013B) == ARTIST and exif.get(0x8298) == COPYRIGHT,
          (ARTIST, COPYRIGHT), (exif.get(0x013B), exif.get(0x8298)))
    if fmt == "jpg" and policy != "strip" and "recode" not in name:
        check(name + "_xmp_kept", b"<dc:creator>Ann Artist</dc:creator>" in raw and
              (policy == "keep") == (b"exif:GPSLongitude" in raw), "XMP without GPS (keep: with)", "other")


def stamp(src, out, policy, recode=False):
    args = [STAMP, "--scale", "0.2"] + (["--metadata", policy] if policy else []) + (["--recode"] if recode else [])
    r = subprocess.run(args + [src, out], capture_output=True, text=True)
    check("stamp_%s_exit_0" % os.path.basename(out), r.returncode == 0, 0, "%d %s" % (r.returncode, r.stderr))


def main():
    im = photo()
    scans = {}
    # little- and big-endian EXIF in baseline JPEGs, and a progressive JPEG (path=progressive)
    for endian, order in (("<", "le"), (">", "be"), ("<", "prog")):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=75, exif=exif_bytes(endian), icc_profile=ICC, progressive=order == "prog")
        src = os.path.join(WORK, "gps_%s.jpg" % order)
        open(src, "wb").write(with_xmp(buf.getvalue()))
        png = os.path.join(WORK, "gps_%s.png" % order)
        im.save(png, "PNG", exif=exif_bytes(endian), icc_profile=ICC)
        src_dqt = [p for m, p in segments(open(src, "rb").read())[0] if m == 0xDB]
        for policy in ("", "strip-gps", "keep", "strip"):
            label = policy or "default"
            for recode in (False, True):
                out = os.path.join(WORK, "out_%s_%s%s.jpg" % (order, label, "_recode" if recode else ""))
                stamp(src, out, policy, recode)
                check_output("jpeg_%s_%s%s" % (order, label, "_recode" if recode else ""), out,
                             policy or "strip-gps", "jpg")
            out = os.path.join(WORK, "out_%s_%s.jpg" % (order, label))
            segs, scan = segments(open(out, "rb").read())
            scans[(order, label)] = scan
            check("jpeg_%s_%s_splice_kept_the_tables" % (order, label),
                  [p for m, p in segs if m == 0xDB] == src_dqt, "the source's DQT", "other tables")
            out = os.path.join(WORK, "out_%s_%s.png" % (order, label))
            stamp(png, out, policy)
            check_output("png_%s_%s" % (order, label), out, policy or "strip-gps", "png")
        for label in ("strip-gps", "strip", "default"):
            check("jpeg_%s_%s_scan_identical_to_keep" % (order, label),
                  scans[(order, label)] == scans[(order, "keep")], "%d bytes" % len(scans[(order, "keep")]),
                  "%d bytes, differing" % len(scans[(order, label)]))
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


sys.exit(main())
