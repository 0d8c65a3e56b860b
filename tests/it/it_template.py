#!/usr/bin/env python3
"""Static checks of the SAM template examples/imager/template.yaml.

    tests/it/it_template.py TEMPLATE [--root DIR] [--artifacts]

Parses the template with PyYAML (CloudFormation's short tags !Ref, !Sub,
!GetAtt... become {"Ref": ...} / {"Fn::Sub": ...} like the long forms) and
prints one `ok CASE` or `FAIL CASE: expected ... got ...` line per check,
then `N passed, N failed, N skipped`. Exit status 1 when a check failed.

What it checks: the SAM transform; both functions on provided.al2023 /
bootstrap / the Architecture parameter (x86_64|arm64, default x86_64;
Globals merged); CodeUri naming the zips `make package`
builds (relative to the template, resolved from --root; with --artifacts the
files must exist); the bucket and its S3 notification to the imager
(ObjectCreated:* and ObjectRemoved:*); the HTTP API route GET /presign;
least-privilege policies (no wildcard action, no "*" resource, no SAM policy
template or managed policy, writes and deletes only under the output prefix,
the presign function only reads under it); one bucket name used everywhere;
no circular dependency between resources (S3 notifications included); the
parameters (memory 128 by default, timeout, prefix xformed_) and outputs.
"""
import os
import re
import sys

import yaml

passed = failed = skipped = 0


def ok(name):
    global passed
    passed += 1
    print("ok " + name)


def fail(name, expected, got):
    global failed
    failed += 1
    print("FAIL %s: expected %s got %s" % (name, expected, got))


def check(name, expected, got):
    if expected == got:
        ok(name)
    else:
        fail(name, expected, got)


def check_true(name, cond, expected, got):
    if cond:
        ok(name)
    else:
        fail(name, expected, got)


# ---- a loader for CloudFormation YAML ---------------------------------------
class CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else "Fn::" + suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)


# ---- helpers ---------------------------------------------------------------
PSEUDO = {"AWS::AccountId", "AWS::Region", "AWS::StackName", "AWS::Partition", "AWS::URLSuffix",
          "AWS::StackId", "AWS::NotificationARNs", "AWS::NoValue"}


def refs(value):
    """Logical names (resources or parameters) a value refers to."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::GetAtt":
                out.add(v[0] if isinstance(v, list) else str(v).split(".")[0])
            elif k == "Fn::Sub":
                text, names = (v[0], v[1]) if isinstance(v, list) else (v, {})
                for m in re.findall(r"\$\{([^}!]+)\}", text):
                    base = m.split(".")[0]
                    if base not in names:
                        out.add(base)
                out |= refs(names)
            else:
                out |= refs(v)
    elif isinstance(value, list):
        for v in value:
            out |= refs(v)
    return out - PSEUDO


def sub_text(value):
    """The template string of a !Sub (or a plain string), else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        v = value["Fn::Sub"]
        return v[0] if isinstance(v, list) else v
    return None


def as_list(v):
    return v if isinstance(v, list) else [v]


def merged(globals_fn, props):
    """SAM Globals merge: maps merge (Environment.Variables), the rest is overridden."""
    out = dict(globals_fn)
    for k, v in props.items():
        if k == "Environment" and k in out:
            env = dict(out[k].get("Variables", {}))
            env.update(v.get("Variables", {}))
            out[k] = {"Variables": env}
        else:
            out[k] = v
    return out


def find_cycle(graph):
    """A dependency cycle as a list of names, or None."""
    state = {}

    def visit(n, path):
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return path + [n, m]
            if m not in state:
                c = visit(m, path + [n])
                if c:
                    return c
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n, [])
            if c:
                return c
    return None


WRITE_ACTIONS = re.compile(r"^s3:(Put|Delete|Restore|Replicate|Abort|Create|Bypass)", re.I)


def statements(fn_name, policies):
    """Every inline statement of a function; a non-inline entry fails a case."""
    out = []
    for i, p in enumerate(as_list(policies or [])):
        if isinstance(p, dict) and "Statement" in p:
            out.extend(as_list(p["Statement"]))
        else:
            fail("%s_policy_%d_inline" % (fn_name, i), "an inline policy document", repr(p))
    return out


# ---- the checks ------------------------------------------------------------
def main(argv):
    path = argv[1]
    root = os.getcwd()
    artifacts = "--artifacts" in argv
    if "--root" in argv:
        root = argv[argv.index("--root") + 1]
    try:
        t = load(path)
    except (OSError, yaml.YAMLError) as e:
        fail("parse", "a YAML template", str(e).replace("\n", " "))
        return
    ok("parse")
    check("transform", "AWS::Serverless-2016-10-31", t.get("Transform"))
    res = t.get("Resources") or {}
    params = t.get("Parameters") or {}
    gfn = (t.get("Globals") or {}).get("Function") or {}

    # parameters
    check("param_memory_default", 128, (params.get("MemorySize") or {}).get("Default"))
    check_true("param_timeout", "Timeout" in params, "a Timeout parameter", sorted(params))
    check("param_prefix_default", "xformed_", (params.get("OutputPrefix") or {}).get("Default"))
    arch = params.get("Architecture") or {}
    check("param_architecture", {"allowed": ["arm64", "x86_64"], "default": "x86_64"},
          {"allowed": sorted(arch.get("AllowedValues") or []), "default": arch.get("Default")})

    # resources
    buckets = [n for n, r in res.items() if r.get("Type") == "AWS::S3::Bucket"]
    fns = {n: r for n, r in res.items() if r.get("Type") == "AWS::Serverless::Function"}
    check("one_bucket", 1, len(buckets))
    bucket = buckets[0] if buckets else None
    bprops = (res.get(bucket) or {}).get("Properties") or {}
    bucket_name = sub_text(bprops.get("BucketName"))
    check_true("bucket_name_from_stack", bucket_name is not None and "${AWS::StackName}" in bucket_name
               and not refs(bprops.get("BucketName")),
               "BucketName !Sub from ${AWS::StackName} (no resource refs)", bprops.get("BucketName"))
    by_code = {}
    for n, r in fns.items():
        code = (r.get("Properties") or {}).get("CodeUri")
        by_code[os.path.basename(os.path.dirname(str(code)))] = n
    imager, presign = by_code.get("imager"), by_code.get("presign")
    check("functions", ["imager", "presign"], sorted(k for k in by_code if k in ("imager", "presign")))
    if not imager or not presign:
        return

    for kind, name in (("imager", imager), ("presign", presign)):
        p = merged(gfn, res[name].get("Properties") or {})
        check(kind + "_runtime", "provided.al2023", p.get("Runtime"))
        check(kind + "_handler", "bootstrap", p.get("Handler"))
        check(kind + "_arch", [{"Ref": "Architecture"}], p.get("Architectures"))
        check(kind + "_memory", {"Ref": "MemorySize"}, p.get("MemorySize"))
        check(kind + "_timeout", {"Ref": "Timeout"}, p.get("Timeout"))
        check(kind + "_codeuri", "../../build/%s/function.zip" % kind, p.get("CodeUri"))
        zip_path = os.path.normpath(os.path.join(root, os.path.dirname(path), str(p.get("CodeUri"))))
        want = os.path.normpath(os.path.join(root, "build", kind, "function.zip"))
        check(kind + "_codeuri_resolves", want, zip_path)
        if artifacts:
            check_true(kind + "_artifact_exists", os.path.isfile(zip_path), zip_path + " (make package)", "no file")
        env = (p.get("Environment") or {}).get("Variables") or {}
        check(kind + "_env_prefix", {"Ref": "OutputPrefix"}, env.get("SPARTA_OUTPUT_PREFIX"))

    # events
    ev = (res[imager].get("Properties") or {}).get("Events") or {}
    s3ev = [e.get("Properties") or {} for e in ev.values() if e.get("Type") == "S3"]
    kinds = sorted(k for e in s3ev for k in as_list(e.get("Events")))
    check("imager_s3_events", ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"], kinds)
    check("imager_s3_bucket", [{"Ref": bucket}] * len(s3ev), [e.get("Bucket") for e in s3ev])
    pev = (res[presign].get("Properties") or {}).get("Events") or {}
    routes = sorted((e.get("Properties") or {}).get("Method", "").upper() + " " +
                    (e.get("Properties") or {}).get("Path", "") for e in pev.values() if e.get("Type") == "HttpApi")
    check("presign_route", ["GET /presign"], routes)
    penv = merged(gfn, res[presign].get("Properties") or {}).get("Environment", {}).get("Variables", {})
    check("presign_env_bucket", {"Ref": bucket}, penv.get("SPARTA_BUCKET"))

    # policies
    arn = "arn:${AWS::Partition}:s3:::"
    bucket_arn = arn + (bucket_name or "?")
    for kind, name in (("imager", imager), ("presign", presign)):
        st = statements(kind, (res[name].get("Properties") or {}).get("Policies"))
        check_true(kind + "_has_policy", bool(st), "statements", st)
        problems, reads, writes, lists = [], [], [], []
        for s in st:
            if s.get("Effect") != "Allow":
                continue
            acts = as_list(s.get("Action"))
            rs = [sub_text(r) for r in as_list(s.get("Resource"))]
            for a in acts:
                if "*" in a:
                    problems.append("wildcard action " + a)
            for r in rs:
                if r is None or r == "*" or r.startswith("arn:aws:s3:::*") or r == arn + "*":
                    problems.append("resource %r" % r)
                elif not r.startswith(bucket_arn):
                    problems.append("resource %r is not in %s" % (r, bucket_arn))
            for a in acts:
                if WRITE_ACTIONS.match(a):
                    writes.extend(rs)
                elif a.lower() in ("s3:getobject", "s3:getobjectversion"):
                    reads.extend(rs)
                elif a.lower() == "s3:listbucket":
                    lists.extend(rs)
                else:
                    problems.append("unexpected action " + a)
        check(kind + "_policy_least_privilege", [], problems)
        check(kind + "_list_bucket_only", [bucket_arn] * len(lists), lists)
        prefixed = bucket_arn + "/${OutputPrefix}*"
        if kind == "imager":
            check("imager_reads_objects", [bucket_arn + "/*"], reads)
            check_true("imager_writes_under_prefix", writes and all(w == prefixed for w in writes),
                       "writes only on " + prefixed, writes)
        else:
            check("presign_reads_under_prefix", [prefixed], reads)
            check("presign_no_writes", [], writes)

    # circular dependencies: explicit references, plus the notification an S3
    # event adds to its bucket (the bucket then depends on the function).
    graph = {n: set() for n in res}
    for n, r in res.items():
        props = dict(r.get("Properties") or {})
        events = props.pop("Events", {}) or {}
        graph[n] |= {x for x in refs(props) | refs(r.get("DependsOn") or []) if x in res}
        for e in events.values():
            if e.get("Type") == "S3":
                b = refs((e.get("Properties") or {}).get("Bucket"))
                for x in b & set(res):
                    graph[x].add(n)
    cycle = find_cycle(graph)
    check("no_circular_dependency", None, cycle)

    # outputs
    outs = t.get("Outputs") or {}
    values = {n: o.get("Value") for n, o in outs.items()}
    check_true("output_bucket", {"Ref": bucket} in values.values(), "an output !Ref " + str(bucket), values)
    api = [v for v in values.values() if "ServerlessHttpApi" in refs(v) and "/presign" in (sub_text(v) or "")]
    check_true("output_api_url", len(api) == 1, "one output with the ServerlessHttpApi URL of /presign", values)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: it_template.py TEMPLATE [--root DIR] [--artifacts]", file=sys.stderr)
        sys.exit(2)
    main(sys.argv)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed else 0)
