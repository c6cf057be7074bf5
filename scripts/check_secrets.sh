#!/usr/bin/env bash
# detect-secrets over the repository's files against the committed .secrets.baseline. The scan
# runs on a copy of the baseline (so moved lines are not a failure); any finding there that is
# not audited as a false positive (`"is_secret": false`) fails: remove it, or audit it with
# `detect-secrets audit .secrets.baseline` and commit the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
scratch=$(mktemp)
trap 'rm -f "$scratch"' EXIT
cp .secrets.baseline "$scratch"
"$BIN/detect-secrets" scan --baseline "$scratch"
"$BIN/python" - "$scratch" <<'PY'
import json
import sys

results = json.load(open(sys.argv[1]))["results"]
found = [
    (path, r["line_number"], r["type"])
    for path, rs in results.items()
    for r in rs
    if r.get("is_secret") is not False
]
for path, line, kind in found:
    print(f"possible secret: {path}:{line} ({kind}): remove it, or audit it in .secrets.baseline")
print(f"detect-secrets: {len(found)} unaudited finding(s)")
sys.exit(1 if found else 0)
PY
