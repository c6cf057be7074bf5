# ops-pipeline: `make run` replays a real trading day locally; `make test` runs the tests.
# Both install what they need into .venv first.

SHELL := /bin/bash
# Python 3.12 (the Lambda runtime): from PATH, else pyenv's, else python3 if it is >= 3.12.
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 python3; do \
	"$$p" -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml layers/shared/requirements.txt | cksum | cut -d' ' -f1)
DEPLOY_VENV ?= .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed
# checkov has its own venv: beside aws-sam-cli, pip settles on a checkov too old for SAM Globals.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# Node tools (asl-validator), from package-lock.json; npm writes this file on every install.
NODE_STAMP := node_modules/.package-lock.json
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: install run test lint typecheck check security eval train bench clean

install: $(STAMP)

$(STAMP):
	@test -n "$(PYTHON)" || { echo "no Python >= 3.12 found"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev,train]'
	@rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(BIN)/ops-pipeline run

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# layers/shared/ops_pipeline and src/ops_pipeline_local, as [tool.mypy] in pyproject.toml says.
typecheck: $(STAMP)
	$(BIN)/mypy

# The state machines and the template: asl-validator, sam validate --lint, cfn-lint, sam build,
# checkov.
$(DEPLOY_STAMP):
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEPLOY_VENV)/bin/python -m pip install --quiet aws-sam-cli cfn-lint
	@touch $@

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov>=3.2'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make check needs Node.js and npm (asl-validator)"; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

check: $(DEPLOY_STAMP) $(CHECKOV_STAMP) $(NODE_STAMP)
	PATH="$(abspath $(DEPLOY_VENV))/bin:$$PATH" CHECKOV="$(abspath $(CHECKOV_VENV))/bin/checkov" \
		ASL_VALIDATOR="$(abspath node_modules/.bin/asl-validator)" bash scripts/check_template.sh

# Secrets in the repository (detect-secrets against the committed .secrets.baseline, whose
# entries are audited false positives) and bandit (accepted findings, each with the reason it is
# accepted, in .bandit-baseline.json). A new finding fails: fix it, or audit it into a baseline.
security: $(STAMP)
	BIN=$(BIN) bash scripts/check_secrets.sh
	$(BIN)/bandit -q -r layers functions src -b .bandit-baseline.json

eval: $(STAMP)
	$(BIN)/python bench/sentiment_eval.py

train: $(STAMP)
	$(BIN)/python scripts/train_sentiment.py

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache node_modules
