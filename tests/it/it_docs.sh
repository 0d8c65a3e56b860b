#!/bin/bash
# The bad-input tables are the program's output, not prose: build/fuzz/bad_inputs
# prints tests/fuzz/BAD_INPUTS.md byte for byte, and the README's table holds
# the same rows and the same count.
. "$(dirname "$0")/preamble.sh"
need bad_inputs_built "$B/fuzz/bad_inputs"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if "$B/fuzz/bad_inputs" > "$out" 2>/dev/null && cmp -s "$out" tests/fuzz/BAD_INPUTS.md; then
    ok bad_inputs_md_is_the_programs_output
else
    fail bad_inputs_md_is_the_programs_output "regenerate: $B/fuzz/bad_inputs > tests/fuzz/BAD_INPUTS.md ($(diff "$out" tests/fuzz/BAD_INPUTS.md | head -3 | tr '\n' ' '))"
fi
rows() { awk '/^\| area \| input \| status \| message \|/ {t = 1} t && /^\|/ {print} t && !/^\|/ {if (t) exit}' "$1"; }
if [ -n "$(rows "$out")" ] && [ "$(rows "$out")" = "$(rows README.md)" ]; then
    ok readme_bad_input_table_is_the_programs_output
else
    fail readme_bad_input_table_is_the_programs_output "README.md's table differs from $B/fuzz/bad_inputs's"
fi
n=$(( $(rows "$out" | wc -l) - 2 ))
if grep -q "for $n kinds of bad input" README.md; then ok readme_counts_the_rows; else fail readme_counts_the_rows "README.md does not say \"for $n kinds of bad input\""; fi
finish
