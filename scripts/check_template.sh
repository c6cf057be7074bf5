#!/usr/bin/env bash
# Static checks of the state machines and the SAM template, in the order CI runs them:
#   1. asl-validator         (each statemachines/*.asl.json, its ${...} substitutions filled with
#                             Lambda ARNs: what CreateStateMachine would refuse, such as state
#                             names used twice across Parallel branches; cfn-lint and sam
#                             validate never read DefinitionUri files)
#   2. sam validate --lint   (SAM transform + cfn-lint on the transformed template)
#   3. cfn-lint template.yaml
#   4. sam build             (functions and the arm64 shared layer, into .aws-sam/; cached)
#   5. checkov               (security checks; skips and their reasons live in .checkov.yaml)
# No AWS account or Docker is needed. `sam build` needs python3.12 on PATH and the package
# registry for the layer's dependencies; asl-validator comes from `npm ci` (package-lock.json).
#
# Usage: scripts/check_template.sh [--no-build]
# Tools are taken from PATH (asl-validator from node_modules/.bin), or from $SAM, $CFN_LINT,
# $CHECKOV, $ASL_VALIDATOR.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export BC_SKIP_MAPPING=TRUE          # checkov: no call home for guideline mappings

SAM="${SAM:-sam}"
CFN_LINT="${CFN_LINT:-cfn-lint}"
CHECKOV="${CHECKOV:-checkov}"
ASL_VALIDATOR="${ASL_VALIDATOR:-node_modules/.bin/asl-validator}"
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }
need() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' not found on PATH ($2)" >&2; exit 1; }
}

need "$ASL_VALIDATOR" "npm ci"
need "$SAM" "pip install aws-sam-cli"
need "$CFN_LINT" "pip install cfn-lint"
need "$CHECKOV" "pip install 'checkov>=3.2'"

# checkov < 3.2 ignores SAM Globals and reports every function as outside the VPC (CKV_AWS_117).
checkov_version="$("$CHECKOV" --version 2>/dev/null | tail -n1)"
lowest="$(printf '3.2.0\n%s\n' "$checkov_version" | sort -V | head -n1)"
if [ "$lowest" != "3.2.0" ]; then
  echo "error: checkov $checkov_version is too old (needs >= 3.2: older ones ignore SAM Globals)" >&2
  exit 1
fi

# Fill every ${Name} with a Lambda function ARN (the substitutions the template declares for
# the state machines are <Function>Arn, and for the backtest a bucket and a parameter name, which
# are plain strings to the validator) and validate the result.
filled="$(mktemp -d)"
trap 'rm -rf "$filled"' EXIT
for definition in statemachines/*.asl.json; do
  step "asl-validator $definition"
  sed -E 's/\$\{([A-Za-z0-9_]+)\}/arn:aws:lambda:us-east-1:123456789012:function:\1/g' \
    "$definition" >"$filled/$(basename "$definition")"
  if grep -q '\${' "$filled/$(basename "$definition")"; then
    echo "error: $definition has a substitution that is not \${Name}" >&2
    exit 1
  fi
  "$ASL_VALIDATOR" --json-path "$filled/$(basename "$definition")"
done

step "sam validate --lint"
"$SAM" validate --lint --template-file template.yaml

step "cfn-lint template.yaml docs/vpc-nat.yaml"
"$CFN_LINT" template.yaml docs/vpc-nat.yaml
echo "cfn-lint: no findings"

if [ "$BUILD" = 1 ]; then
  need python3.12 "sam build needs the Lambda runtime's Python on PATH"
  step "sam build"
  "$SAM" build --template-file template.yaml --cached --parallel
fi

step "checkov $checkov_version (skips: .checkov.yaml)"
"$CHECKOV" --config-file .checkov.yaml -f template.yaml --skip-download

printf '\nAll template checks passed.\n'
