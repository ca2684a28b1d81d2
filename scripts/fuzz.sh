#!/bin/sh
# The fuzzer (tests/test_fuzz.py) for a developer: random mutations of the corpus, round after
# round until the time is up. It stops at the first failure and prints the failing input, shrunk
# to a minimal one: make it a regression test (tests/test_hostile_inputs.py), then fix it.
# Usage: sh scripts/fuzz.sh [--minutes N] [pytest arguments, e.g. -k capture]
# (The test suite runs the same module with a fixed, derandomized budget.)
set -eu
cd "$(dirname "$0")/.."
minutes=10
if [ "${1:-}" = "--minutes" ]; then
    minutes=$2
    shift 2
fi
sh scripts/setup-venv.sh test >/dev/null
report=$(mktemp)
trap 'rm -f "$report"' EXIT
summary() {
    awk -F '\t' '{ n[$1] += $2; total += $2 }
        END { for (k in n) printf "  %-16s %d\n", k, n[k]; printf "  %-16s %d\n", "total", total }' \
        "$report" | sort
}
end=$(($(date +%s) + minutes * 60))
round=0
while [ "$(date +%s)" -lt "$end" ]; do
    round=$((round + 1))
    if ! SMBWATCH_FUZZ_PROFILE=dev SMBWATCH_FUZZ_REPORT="$report" \
        SMBWATCH_FUZZ_EXAMPLES="${SMBWATCH_FUZZ_EXAMPLES:-500}" \
        .venv/bin/python -m pytest -q -x -p no:cacheprovider tests/test_fuzz.py "$@"; then
        echo "fuzz: a failure in round $round (its minimal input is above); inputs run before it:"
        summary
        exit 1
    fi
done
echo "fuzz: $round rounds in $minutes minutes, nothing found; inputs run:"
summary
