#!/bin/bash
# The SAM template examples/imager/template.yaml, checked statically by
# tests/it/it_template.py (needs Debian python3-yaml):
#   template_*   every check on the real template, artifacts included (the
#                zips `make package` builds must exist: check-build makes them)
#   mutant_*     the checker on broken copies of the template: each mutation
#                must fail exactly the checks it breaks, so that a green run
#                means something (wide writes, s3:*, a circular bucket
#                reference, a wrong CodeUri, a missing event, a managed policy,
#                another runtime, a missing route)
. "$(dirname "$0")/preamble.sh"
T=examples/imager/template.yaml
checker=$PWD/tests/it/it_template.py

if ! python3 -c 'import yaml' 2>/dev/null; then
    fail template_yaml "python3-yaml installed" "no module yaml"; finish
fi
tmp=$(mktemp -d /tmp/it_template.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The real template: its own lines, prefixed, counted into our summary. The
# artifacts are looked up in $SPIM_BUILD (a tree where build/ is that dir).
root=$PWD
if [ "$(cd "$B" && pwd -P)" != "$(pwd -P)/build" ]; then
    root=$tmp/real
    mkdir -p "$root/examples/imager"
    cp "$T" "$root/$T"
    ln -s "$(cd "$B" && pwd)" "$root/build"
fi
out=$(cd "$root" && python3 "$checker" "$T" --root "$root" --artifacts 2>&1)
while read -r line; do
    case "$line" in
        "ok "*) ok "template_${line#ok }" ;;
        "FAIL "*) echo "FAIL template_${line#FAIL }"; failed=$((failed + 1)) ;;
    esac
done <<< "$out"
echo "$out" | grep -qE '^[0-9]+ passed' || fail template_summary "a summary line" "$(echo "$out" | tail -3)"

# mutant NAME "expected failing cases" python-replacement-old python-replacement-new
mutant() {
    local name=$1 want=$2 old=$3 new=$4 got
    mkdir -p "$tmp/$name/examples/imager"
    python3 - "$T" "$tmp/$name/$T" "$old" "$new" <<'EOF' || { fail "mutant_$name" "the text to replace in $T" "none"; return; }
import sys
src, dst, old, new = sys.argv[1:]
text = open(src, encoding="utf-8").read()
if old not in text:
    sys.exit(1)
open(dst, "w", encoding="utf-8").write(text.replace(old, new, 1))
EOF
    got=$(cd "$tmp/$name" && python3 "$checker" "$T" --root "$tmp/$name" |
        sed -n 's/^FAIL \([^:]*\):.*/\1/p' | sort | tr '\n' ' ')
    if [ "${got% }" = "$want" ]; then ok "mutant_$name"; else fail "mutant_$name" "failing checks [$want]" "[${got% }]"; fi
}

mutant writes_everywhere "imager_writes_under_prefix" \
    's3:::${AWS::StackName}-${AWS::AccountId}-${AWS::Region}/${OutputPrefix}*"' \
    's3:::${AWS::StackName}-${AWS::AccountId}-${AWS::Region}/*"'
mutant s3_star "imager_policy_least_privilege" \
    '                - s3:PutObject' $'                - s3:*\n                - s3:PutObject'
mutant resource_star "presign_policy_least_privilege presign_reads_under_prefix" \
    '            - Sid: ReadStampedCopies
              Effect: Allow
              Action:
                - s3:GetObject
              Resource: !Sub' '            - Sid: ReadStampedCopies
              Effect: Allow
              Action:
                - s3:GetObject
              Resource: "*"
              NotResource: !Sub'
mutant circular "imager_policy_least_privilege imager_reads_objects no_circular_dependency" \
    'Resource: !Sub "arn:${AWS::Partition}:s3:::${AWS::StackName}-${AWS::AccountId}-${AWS::Region}/*"' \
    'Resource: !Sub "${ImageBucket.Arn}/*"'
mutant codeuri "imager_codeuri imager_codeuri_resolves" \
    'CodeUri: ../../build/imager/function.zip' 'CodeUri: ../../build/imager/bootstrap'
mutant no_removed "imager_s3_events" '              - s3:ObjectRemoved:*' ''
mutant managed_policy "presign_policy_0_inline" \
    '      Policies:
        - Version: "2012-10-17"
          Statement:
            - Sid: ReadStampedCopies' '      Policies:
        - AmazonS3FullAccess
        - Version: "2012-10-17"
          Statement:
            - Sid: ReadStampedCopies'
mutant runtime "imager_runtime presign_runtime" 'Runtime: provided.al2023' 'Runtime: provided.al2'
mutant arch "imager_arch presign_arch" '      - !Ref Architecture' '      - arm64'
mutant route "presign_route" 'Path: /presign' 'Path: /link'
mutant presign_writes "presign_no_writes" \
    '            - Sid: ReadStampedCopies
              Effect: Allow
              Action:
                - s3:GetObject' '            - Sid: ReadStampedCopies
              Effect: Allow
              Action:
                - s3:GetObject
                - s3:PutObject'
mutant memory "param_memory_default" '    Default: 128' '    Default: 1024'

finish
