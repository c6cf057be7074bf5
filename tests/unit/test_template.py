"""template.yaml against the code: names defined once, handed to the code, never typed twice.

The earlier hand-deployed system failed because schedules that were never created and SSM
parameter names that differed between code and infrastructure (SPEC). These tests read the
template with a small YAML loader that accepts CloudFormation's short tags and prove:

- every function's CodeUri has an `app.py` with `lambda_handler`, and the function set is the
  contract the local runner relies on;
- every `*_PARAM` variable is `!Ref` on an `AWS::SSM::Parameter` the template declares (named
  under the stack), and the function holding it may read that parameter;
- the environment variables the code reads exist in the template, per function: each function
  gets what its code (and the layer modules it imports) reads, and no parameter it does not read;
- no IAM statement grants a `*` action;
- both schedules: New York time, flexible window "OFF", scheduled time in the input, retry
  policy, DLQ, a role that can start exactly the two state machines;
- state machine substitutions are `<FunctionLogicalId>Arn` -> that function, and the ASL files
  use exactly those;
- the alarms watch the metric names and dimensions the code emits, and the dashboard body is JSON.

A file that a test checks (an ASL file, a function, a sample event) and that is missing fails the
test: nothing here skips.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LAYER_PACKAGE = ROOT / "layers" / "shared" / "ops_pipeline"
FUNCTIONS_DIR = ROOT / "functions"

# The contract the code and the local runner rely on (do not rename).
EXPECTED_FUNCTIONS = {
    "MarketCheckFunction": "functions/market_check/",
    "TelemetryIngestorFunction": "functions/telemetry_ingestor/",
    "FeatureComputerFunction": "functions/feature_computer/",
    "SignalEngineFunction": "functions/signal_engine/",
    "DispatcherFunction": "functions/dispatcher/",
    "RssIngestFunction": "functions/rss_ingest/",
    "ClassifierFunction": "functions/classifier/",
    "WatchlistEngineFunction": "functions/watchlist_engine/",
    "HealthcheckFunction": "functions/healthcheck/",
    "DbMigrateFunction": "functions/db_migrate/",
}
EXPECTED_STATE_MACHINES = {
    "MinutePipelineStateMachine": (
        "statemachines/minute_pipeline.asl.json",
        [
            "MarketCheckFunction",
            "TelemetryIngestorFunction",
            "FeatureComputerFunction",
            "SignalEngineFunction",
            "DispatcherFunction",
        ],
    ),
    "FiveMinutePipelineStateMachine": (
        "statemachines/five_minute_pipeline.asl.json",
        [
            "RssIngestFunction",
            "ClassifierFunction",
            "WatchlistEngineFunction",
            "HealthcheckFunction",
        ],
    ),
}

# Variables the code may read with a default that the template deliberately does not set:
# local-run and test overrides. Anything else the code reads must come from the template.
OPTIONAL_LOCAL_ENV = {
    "DATABASE_URL",  # local database instead of the DB_* variables
    "DB_TLS",  # TLS without IAM auth (local)
    "ALPACA_DATA_URL",  # point alpaca-py at the local Alpaca server
    "ALPACA_TRADING_URL",
    "ALPACA_HTTP_TIMEOUT",  # override of a sane default
    "MASSIVE_DATA_URL",  # point the Massive client at the local backup server
}
# Set by the Lambda runtime or Powertools itself.
RUNTIME_ENV_PREFIXES = ("AWS_", "LAMBDA_", "_HANDLER", "_X_AMZN", "POWERTOOLS_")

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


# --------------------------------------------------------------------------------------------
# Loading the template
# --------------------------------------------------------------------------------------------
class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref X` into {"Ref": "X"}, `!GetAtt A.B` into {"Fn::GetAtt": [A, B]},
    `!Sub`, `!If`, ... into {"Fn::<Tag>": value} (the JSON form CloudFormation uses)."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _of_type(resources: dict[str, Any], type_: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r["Type"] == type_}


def _functions(resources: dict[str, Any]) -> dict[str, Any]:
    return _of_type(resources, "AWS::Serverless::Function")


def _ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) and len(value) == 1 else None


def _function_env(template: dict[str, Any], name: str) -> dict[str, Any]:
    env = dict(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    props = template["Resources"][name]["Properties"]
    env.update(props.get("Environment", {}).get("Variables", {}))
    return env


def _all_template_env_names(template: dict[str, Any]) -> set[str]:
    names = set(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    for fn in _functions(template["Resources"]).values():
        names |= set(fn["Properties"].get("Environment", {}).get("Variables", {}))
    return names


# --------------------------------------------------------------------------------------------
# Reading the code: env vars read, config getters used, layer modules imported
# --------------------------------------------------------------------------------------------
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_environ(node: ast.AST) -> bool:
    """`os.environ`, `environ`, or a local mapping called `env` (db.target_from_env)."""
    if isinstance(node, ast.Attribute) and node.attr == "environ":
        return True
    return isinstance(node, ast.Name) and node.id in ("environ", "env")


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "string"` assignments."""
    found = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found[node.targets[0].id] = node.value.value
    return found


def env_reads(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(required, optional) env var names read with a literal name or a module-level string
    constant: `os.environ["X"]` is required; `os.environ.get("X")` / `os.getenv("X")` are
    optional."""
    constants = _string_constants(tree)

    def name_of(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]
        return None

    required: set[str] = set()
    optional: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            key = name_of(node.slice)
            if key:
                required.add(key)
        elif isinstance(node, ast.Call) and node.args:
            key = name_of(node.args[0])
            if not key:
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and (
                (func.attr == "get" and _is_environ(func.value)) or func.attr == "getenv"
            ):
                optional.add(key)
    # `if env.get("X"): ... env["X"]` is a guarded, optional read.
    return required - optional, optional


def config_env_constants() -> dict[str, str]:
    """`TICKERS_PARAM = "TICKERS_PARAM"`-style constants in config.py: the env var names that
    carry parameter names (constant name -> env var name)."""
    return {
        name: value
        for name, value in _string_constants(_parse(LAYER_PACKAGE / "config.py")).items()
        if ENV_NAME.match(value) and name == value
    }


def config_getters() -> dict[str, set[str]]:
    """Public functions of config.py -> the env vars they read (through the constants)."""
    constants = config_env_constants()
    getters = {}
    for node in _parse(LAYER_PACKAGE / "config.py").body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in constants}
            if used:
                getters[node.name] = {constants[c] for c in used}
    return getters


def _module_file(module: str) -> Path | None:
    """`ops_pipeline.news.rss` -> its file in the layer, or None if not ours."""
    if module != "ops_pipeline" and not module.startswith("ops_pipeline."):
        return None
    parts = module.split(".")[1:]
    base = LAYER_PACKAGE.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imports(tree: ast.Module) -> tuple[set[str], dict[str, str], set[str]]:
    """(layer modules imported, local alias -> module, names imported from ops_pipeline.config)."""
    modules: set[str] = set()
    aliases: dict[str, str] = {}
    from_config: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ops_pipeline"):
                    modules.add(alias.name)
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("ops_pipeline"):
                continue
            modules.add(node.module)
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if _module_file(sub):
                    modules.add(sub)
                    aliases[alias.asname or alias.name] = sub
                elif node.module == "ops_pipeline.config":
                    from_config.add(alias.name)
    return modules, aliases, from_config


def function_needs(app_py: Path) -> dict[str, Any]:
    """What a function's code (app.py + every layer module it imports, transitively) reads:
    env vars (required/optional), config getters used, whether it touches the database."""
    getters = config_getters()
    seen: set[Path] = set()
    todo = [app_py]
    required: set[str] = set()
    optional: set[str] = set()
    used_getters: set[str] = set()
    uses_db = False
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = _parse(path)
        modules, aliases, from_config = _imports(tree)
        if path != LAYER_PACKAGE / "config.py":  # config's own reads are mapped through getters
            req, opt = env_reads(tree)
            required |= req
            optional |= opt
        used_getters |= from_config & set(getters)
        config_aliases = {a for a, m in aliases.items() if m == "ops_pipeline.config"}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in config_aliases
                and node.attr in getters
            ):
                used_getters.add(node.attr)
        if "ops_pipeline.db" in modules:
            uses_db = True
        for module in modules:
            file = _module_file(module)
            if file:
                todo.append(file)
    for getter in used_getters:
        required |= getters[getter]
    return {"required": required, "optional": optional, "getters": used_getters, "db": uses_db}


def _code_files() -> list[Path]:
    assert FUNCTIONS_DIR.is_dir(), f"{FUNCTIONS_DIR} is missing"
    return sorted(LAYER_PACKAGE.rglob("*.py")) + sorted(FUNCTIONS_DIR.rglob("*.py"))


def _existing_app(code_uri: str) -> Path:
    app = ROOT / code_uri / "app.py"
    assert app.is_file(), f"{code_uri}app.py is missing"
    return app


# --------------------------------------------------------------------------------------------
# Functions and layer
# --------------------------------------------------------------------------------------------
def test_function_set_is_the_contract(resources):
    functions = _functions(resources)
    assert {name: f["Properties"]["CodeUri"] for name, f in functions.items()} == EXPECTED_FUNCTIONS


def test_globals_runtime_handler_layer_vpc_tracing(template):
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.12"
    assert glob["Handler"] == "app.lambda_handler"
    assert glob["Architectures"] in (["arm64"], ["x86_64"])
    assert glob["Layers"] == [{"Ref": "SharedLayer"}]
    assert glob["Tracing"] == "Active"
    assert glob["VpcConfig"]["SubnetIds"] == {"Ref": "PrivateSubnetIds"}
    assert glob["VpcConfig"]["SecurityGroupIds"]
    env = glob["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "ops-pipeline"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "OpsPipeline"
    assert env["DB_HOST"] == {"Fn::GetAtt": ["DbProxy", "Endpoint"]}
    assert env["DB_IAM_AUTH"] == "true"
    for name, fn in _functions(template["Resources"]).items():
        props = fn["Properties"]
        for key in ("Runtime", "Handler", "Layers", "VpcConfig", "Architectures"):
            assert key not in props, f"{name} overrides Globals.{key}"


def test_shared_layer(resources):
    layer = resources["SharedLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/shared/"
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    assert (ROOT / "layers/shared/requirements.txt").is_file()
    assert (ROOT / "layers/shared/ops_pipeline/__init__.py").is_file()


@pytest.mark.parametrize("name,code_uri", sorted(EXPECTED_FUNCTIONS.items()))
def test_function_code_has_a_lambda_handler(name, code_uri):
    app = _existing_app(code_uri)
    tree = _parse(app)
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    defined |= {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    assert "lambda_handler" in defined, f"{app} has no lambda_handler"


@pytest.mark.parametrize("name", sorted(EXPECTED_FUNCTIONS))
def test_function_has_its_own_log_group_with_retention(resources, name):
    fn = resources[name]["Properties"]
    group = _ref(fn["LoggingConfig"]["LogGroup"])
    assert group and resources[group]["Type"] == "AWS::Logs::LogGroup"
    props = resources[group]["Properties"]
    assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert props["LogGroupName"]["Fn::Sub"].startswith("/aws/lambda/${AWS::StackName}/")


def test_dispatcher_is_one_trader_at_a_time(resources):
    assert resources["DispatcherFunction"]["Properties"]["ReservedConcurrentExecutions"] == 1


@pytest.mark.parametrize("name,code_uri", sorted(EXPECTED_FUNCTIONS.items()))
def test_each_function_has_a_sample_event(name, code_uri):
    """`events/<stage>.json` for `sam local invoke <Function> -e events/<stage>.json`."""
    stage = code_uri.split("/")[1]
    path = ROOT / "events" / f"{stage}.json"
    assert path.is_file(), f"events/{stage}.json is missing"
    event = json.loads(path.read_text(encoding="utf-8"))
    if name == "DbMigrateFunction":
        assert event["RequestType"] in ("Create", "Update", "Delete")
        assert event["ResourceType"] == "Custom::DbMigration"
    else:
        assert "time" in event, f"{path.name}: stages act on the event time in the input"


# --------------------------------------------------------------------------------------------
# Parameters, secret, environment
# --------------------------------------------------------------------------------------------
def test_param_env_vars_reference_declared_ssm_parameters(template, resources):
    ssm = _of_type(resources, "AWS::SSM::Parameter")
    for fn_name in _functions(resources):
        for var, value in _function_env(template, fn_name).items():
            if var.endswith("_PARAM"):
                target = _ref(value)
                assert target in ssm, (
                    f"{fn_name}.{var} must be !Ref on an AWS::SSM::Parameter, got {value!r}"
                )
            if var == "ALPACA_SECRET_ARN":
                assert _ref(value) == "AlpacaSecret"
    for name, param in ssm.items():
        sub = param["Properties"]["Name"]
        assert isinstance(sub, dict) and sub["Fn::Sub"].startswith("/${AWS::StackName}/"), name
        assert param["Properties"]["Type"] == "String"


def test_every_config_constant_is_set_by_the_template(template):
    """config.py's env var names (TICKERS_PARAM, ..., LIVE_TRADING_CONFIRMATION) all exist."""
    defined = _all_template_env_names(template)
    missing = set(config_env_constants().values()) - defined
    assert not missing, f"config.py reads {sorted(missing)} but no function sets them"


def test_parameter_defaults(template, resources):
    params = template["Parameters"]
    assert params["Tickers"]["Default"] == "AAPL,MSFT,TSLA,GOOGL,AMZN,META,NVDA"
    assert params["TradingMode"]["Default"] == "simulation"
    assert set(params["TradingMode"]["AllowedValues"]) == {"simulation", "paper", "live"}
    assert params["TradingState"]["Default"] == "active"
    assert set(params["TradingState"]["AllowedValues"]) == {"active", "reducing", "halted"}
    assert params["LiveTradingConfirmation"]["Default"] == ""
    feeds = json.loads(params["Feeds"]["Default"])
    assert len(feeds) >= 2 and all(f["url"].startswith("https://") and f["name"] for f in feeds)
    limits = json.loads(params["RiskLimits"]["Default"])
    assert limits == {
        "min_confidence": 0.5,
        "max_notional_per_order": 10000,
        "max_position_notional": 25000,
        "recommendation_ttl_minutes": 5,
        "max_daily_loss": 2500,
        "max_open_positions": 10,
        "max_trades_per_ticker_per_day": 20,
        "cooldown_minutes_after_fill": 2,
        "max_decision_age_seconds": 60,
    }
    assert json.loads(params["SimulationCosts"]["Default"]) == {
        "slippage_bps": 5,
        "commission_per_share": 0,
    }
    secret = json.loads(resources["AlpacaSecret"]["Properties"]["SecretString"])
    assert secret == {"key_id": "REPLACE_ME", "secret_key": "REPLACE_ME"}


def test_code_reads_only_env_vars_the_template_defines(template):
    """Grep-level: every env var name read anywhere in the layer or the functions exists."""
    defined = _all_template_env_names(template) | OPTIONAL_LOCAL_ENV
    problems = []
    for path in _code_files():
        required, optional = env_reads(_parse(path))
        for name in sorted(required | optional):
            if name.startswith(RUNTIME_ENV_PREFIXES) or name in defined:
                continue
            problems.append(f"{path.relative_to(ROOT)} reads {name}")
    assert not problems, "env vars read by the code but not set by template.yaml:\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize("name,code_uri", sorted(EXPECTED_FUNCTIONS.items()))
def test_each_function_gets_exactly_the_parameters_its_code_reads(
    template, resources, name, code_uri
):
    """Per function: what app.py and the layer modules it imports read is set on that function
    (or in Globals), with the matching read permission; parameters it never reads are not
    given to it (least privilege)."""
    needs = function_needs(_existing_app(code_uri))
    env = _function_env(template, name)
    missing = {
        v
        for v in needs["required"]
        if v not in env and v not in OPTIONAL_LOCAL_ENV and not v.startswith(RUNTIME_ENV_PREFIXES)
    }
    assert not missing, f"{name}: code reads {sorted(missing)} but the template does not set it"

    policies = resources[name]["Properties"].get("Policies", [])
    readable = {
        _ref(p[key]["ParameterName"])
        for p in policies
        if isinstance(p, dict)
        for key in ("SSMParameterWithSlashPrefixReadPolicy", "SSMParameterReadPolicy")
        if key in p
    }
    secrets = {
        _ref(p["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"])
        for p in policies
        if isinstance(p, dict) and "AWSSecretsManagerGetSecretValuePolicy" in p
    }
    managed = {_ref(p) for p in policies if _ref(p)}

    given = {var for var in env if var.endswith("_PARAM") or var == "ALPACA_SECRET_ARN"}
    unused = given - needs["required"]
    assert not unused, f"{name} is given {sorted(unused)} but its code never reads them"
    for var in given:
        target = _ref(env[var])
        if var == "ALPACA_SECRET_ARN":
            assert target in secrets, f"{name} cannot read the secret {target}"
            assert "AlpacaSecretDecryptPolicy" in managed, f"{name} cannot decrypt {target}"
        else:
            assert target in readable, f"{name} has {var} but no read policy on {target}"
    if needs["db"]:
        assert "DbConnectPolicy" in managed, f"{name} uses the database but lacks rds-db:connect"
    else:
        assert "DbConnectPolicy" not in managed, f"{name} never uses the database"


def test_live_trading_needs_the_confirmation_setting(template):
    env = _function_env(template, "DispatcherFunction")
    assert env["LIVE_TRADING_CONFIRMATION"] == {"Ref": "LiveTradingConfirmation"}
    assert template["Parameters"]["LiveTradingConfirmation"]["AllowedValues"] == [
        "",
        "I-ACCEPT-REAL-MONEY-RISK",
    ]


def test_healthcheck_can_list_minute_executions(template, resources):
    env = _function_env(template, "HealthcheckFunction")
    assert env["MINUTE_STATE_MACHINE_ARN"] == {"Ref": "MinutePipelineStateMachine"}
    statements = [
        s
        for p in resources["HealthcheckFunction"]["Properties"]["Policies"]
        if isinstance(p, dict) and "Statement" in p
        for s in p["Statement"]
    ]
    actions = {s["Action"]: s["Resource"] for s in statements}
    assert actions["states:ListExecutions"] == {"Ref": "MinutePipelineStateMachine"}
    assert (
        "execution:${AWS::StackName}-minute-pipeline:*"
        in actions["states:DescribeExecution"]["Fn::Sub"]
    )


# --------------------------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------------------------
def _statements(policy_document: Any) -> list[dict[str, Any]]:
    statements = policy_document.get("Statement", []) if isinstance(policy_document, dict) else []
    return statements if isinstance(statements, list) else [statements]


def _actions(statement: dict[str, Any]) -> list[Any]:
    actions = statement.get("Action", [])
    return actions if isinstance(actions, list) else [actions]


def test_no_wildcard_actions(resources):
    """No `*` or `service:*` action in any function policy, managed policy or role."""
    found = []

    def check(owner: str, statement: Any) -> None:
        if isinstance(statement, dict) and "Fn::If" in statement:
            for branch in statement["Fn::If"][1:]:
                check(owner, branch)
            return
        for action in _actions(statement):
            if isinstance(action, str) and (action == "*" or action.endswith(":*")):
                found.append(f"{owner}: {action}")

    for name, res in resources.items():
        props = res.get("Properties", {})
        if (
            res["Type"] == "AWS::Serverless::Function"
            or res["Type"] == "AWS::Serverless::StateMachine"
        ):
            for policy in props.get("Policies", []):
                if isinstance(policy, dict) and "Statement" in policy:
                    for st in _statements(policy):
                        check(name, st)
        elif res["Type"] == "AWS::IAM::ManagedPolicy":
            for st in _statements(props["PolicyDocument"]):
                check(name, st)
        elif res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for st in _statements(policy["PolicyDocument"]):
                    check(name, st)
    assert not found, found


def test_rds_db_connect_is_scoped_to_the_proxy_and_user(resources):
    statement = resources["DbConnectPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Action"] == "rds-db:connect"
    pattern, variables = statement["Resource"]["Fn::Sub"]
    assert pattern.endswith(":dbuser:${ProxyResourceId}/${DbUser}")
    assert variables["ProxyResourceId"] == {
        "Fn::Select": [6, {"Fn::Split": [":", {"Fn::GetAtt": ["DbProxy", "DBProxyArn"]}]}]
    }


def test_proxy_requires_tls_and_iam(resources):
    proxy = resources["DbProxy"]["Properties"]
    assert proxy["RequireTLS"] is True
    assert proxy["EngineFamily"] == "POSTGRESQL"
    assert proxy["Auth"][0]["IAMAuth"] == "REQUIRED"
    assert proxy["Auth"][0]["AuthScheme"] == "SECRETS"
    db = resources["Database"]["Properties"]
    assert db["StorageEncrypted"] is True and db["ManageMasterUserPassword"] is True
    assert db["PubliclyAccessible"] is False
    assert str(db["EngineVersion"]["Ref"]) == "DbEngineVersion"


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------
def test_schedules(resources):
    schedules = _of_type(resources, "AWS::Scheduler::Schedule")
    targets = {_ref(s["Properties"]["Target"]["Arn"]) for s in schedules.values()}
    assert targets == set(EXPECTED_STATE_MACHINES), "one schedule per state machine"
    for name, schedule in schedules.items():
        props = schedule["Properties"]
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}, (
            f"{name}: Mode must be the string OFF"
        )
        assert props["ScheduleExpressionTimezone"] == "America/New_York", name
        assert props["State"] == {"Fn::If": ["SchedulesOn", "ENABLED", "DISABLED"]}, name
        target = props["Target"]
        assert json.loads(target["Input"]) == {"time": "<aws.scheduler.scheduled-time>"}, name
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1, name
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] >= 60, name
        dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        assert resources[dlq]["Type"] == "AWS::SQS::Queue"
        assert resources[dlq]["Properties"].get("KmsMasterKeyId") or resources[dlq][
            "Properties"
        ].get("SqsManagedSseEnabled"), "the DLQ must be encrypted"
        assert target["RoleArn"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}
    minute = next(
        s
        for s in schedules.values()
        if _ref(s["Properties"]["Target"]["Arn"]) == "MinutePipelineStateMachine"
    )
    assert minute["Properties"]["ScheduleExpression"] == "cron(* 9-15 ? * MON-FRI *)"


def test_scheduler_role_can_only_start_the_two_pipelines(resources):
    statements = [
        st
        for policy in resources["SchedulerRole"]["Properties"]["Policies"]
        for st in _statements(policy["PolicyDocument"])
    ]
    start = [st for st in statements if "states:StartExecution" in _actions(st)]
    assert len(start) == 1 and _actions(start[0]) == ["states:StartExecution"]
    assert sorted(_ref(r) for r in start[0]["Resource"]) == sorted(EXPECTED_STATE_MACHINES)
    others = {a for st in statements for a in _actions(st)} - {"states:StartExecution"}
    assert others <= {"sqs:SendMessage", "kms:GenerateDataKey", "kms:Decrypt"}


# --------------------------------------------------------------------------------------------
# State machines and their ASL files
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(EXPECTED_STATE_MACHINES))
def test_state_machine_substitutions_reference_functions(resources, name):
    definition_uri, function_ids = EXPECTED_STATE_MACHINES[name]
    sm = resources[name]
    assert sm["Type"] == "AWS::Serverless::StateMachine"
    props = sm["Properties"]
    assert props["DefinitionUri"] == definition_uri
    assert props["Type"] == "STANDARD"
    assert props["Tracing"] == {"Enabled": True}
    assert props["Logging"]["Level"] in ("ERROR", "ALL")
    log_group = props["Logging"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"][
        "Fn::GetAtt"
    ][0]
    assert resources[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}

    subs = props["DefinitionSubstitutions"]
    assert sorted(subs) == sorted(f"{f}Arn" for f in function_ids)
    for key, value in subs.items():
        function = key.removesuffix("Arn")
        assert resources[function]["Type"] == "AWS::Serverless::Function", key
        assert value == {"Fn::GetAtt": [function, "Arn"]}, key
    invokable = {
        _ref(p["LambdaInvokePolicy"]["FunctionName"])
        for p in props["Policies"]
        if isinstance(p, dict) and "LambdaInvokePolicy" in p
    }
    assert invokable == set(function_ids)


@pytest.mark.parametrize("name", sorted(EXPECTED_STATE_MACHINES))
def test_asl_uses_exactly_the_substitutions(resources, name):
    definition_uri, _ = EXPECTED_STATE_MACHINES[name]
    path = ROOT / definition_uri
    assert path.is_file(), f"{definition_uri} is missing"
    text = path.read_text(encoding="utf-8")
    json.loads(text)
    used = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))
    defined = set(resources[name]["Properties"]["DefinitionSubstitutions"])
    assert used - defined == set(), f"{definition_uri} uses undefined {sorted(used - defined)}"
    assert defined - used == set(), f"{definition_uri} never uses {sorted(defined - used)}"


def _task_states(scope: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Task state of a definition, Parallel branches and Map processors included."""
    for name, state in scope["States"].items():
        if state["Type"] == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from _task_states(branch)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _task_states(processor)


def _task_function(state: dict[str, Any]) -> str:
    match = re.fullmatch(r"\$\{([A-Za-z0-9]+)Arn\}", state["Resource"])
    assert match, f"Resource {state['Resource']} is not a function substitution"
    return match.group(1)


def _function_timeout(template: dict[str, Any], name: str) -> int:
    props = template["Resources"][name]["Properties"]
    return int(props.get("Timeout", template["Globals"]["Function"]["Timeout"]))


def _definition(name: str) -> dict[str, Any]:
    return json.loads((ROOT / EXPECTED_STATE_MACHINES[name][0]).read_text(encoding="utf-8"))


def _retry_waits(retrier: dict[str, Any]) -> list[float]:
    """The waits before each retry, with the ASL defaults (1 s, 3 attempts, rate 2.0)."""
    interval = retrier.get("IntervalSeconds", 1)
    rate = retrier.get("BackoffRate", 2.0)
    waits = [interval * rate**i for i in range(retrier.get("MaxAttempts", 3))]
    if "MaxDelaySeconds" in retrier:
        waits = [min(w, retrier["MaxDelaySeconds"]) for w in waits]
    return waits


@pytest.mark.parametrize("name", sorted(EXPECTED_STATE_MACHINES))
def test_every_task_waits_at_least_as_long_as_its_function_may_run(template, name):
    """A Task timeout shorter than the function's lets Step Functions retry (or fail) while the
    first invocation still runs."""
    tasks = list(_task_states(_definition(name)))
    assert {_task_function(s) for _, s in tasks} == set(EXPECTED_STATE_MACHINES[name][1])
    for state_name, state in tasks:
        function = _task_function(state)
        timeout = _function_timeout(template, function)
        assert state["TimeoutSeconds"] >= timeout, (
            f"{state_name}: TimeoutSeconds {state['TimeoutSeconds']} < {function} Timeout {timeout}"
        )


def test_a_throttled_dispatch_waits_behind_the_running_one(template, resources):
    """Reserved concurrency 1 throttles a dispatch that overlaps another; the retry that handles
    Lambda.TooManyRequestsException must keep trying for as long as a dispatch can run."""
    assert resources["DispatcherFunction"]["Properties"]["ReservedConcurrentExecutions"] == 1
    (dispatch,) = [
        s
        for _, s in _task_states(_definition("MinutePipelineStateMachine"))
        if _task_function(s) == "DispatcherFunction"
    ]
    # Step Functions uses the first retrier whose ErrorEquals matches.
    throttle = next(
        r
        for r in dispatch["Retry"]
        if {"Lambda.TooManyRequestsException", "States.ALL"} & set(r["ErrorEquals"])
    )
    assert "Lambda.TooManyRequestsException" in throttle["ErrorEquals"]
    waits = _retry_waits(throttle)
    timeout = _function_timeout(template, "DispatcherFunction")
    assert sum(waits) >= timeout, f"throttle retries wait {sum(waits):.0f} s < timeout {timeout} s"
    assert dispatch["TimeoutSeconds"] >= timeout


def test_the_layer_ships_tzdata():
    """zoneinfo needs the IANA database; not every Lambda image has one in /usr/share/zoneinfo."""
    pinned = {
        line.split("==")[0].strip().lower(): line.split("#")[0].strip()
        for line in (ROOT / "layers/shared/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert re.fullmatch(r"tzdata==\d{4}\.\d+", pinned.get("tzdata", "")), pinned.get("tzdata")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(re.match(r"tzdata\b", d) for d in project["dependencies"])


# --------------------------------------------------------------------------------------------
# Alarms, metrics, dashboard
# --------------------------------------------------------------------------------------------
def _metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    props = alarm["Properties"]
    if "Metrics" in props:
        return [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]
    return [
        {
            "Namespace": props["Namespace"],
            "MetricName": props["MetricName"],
            "Dimensions": props.get("Dimensions", []),
        }
    ]


def test_alarms_publish_to_the_encrypted_topic(resources):
    """Every alarm notifies the topic, except the components of a composite alarm (which does)."""
    assert resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    assert resources["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"
    composites = _of_type(resources, "AWS::CloudWatch::CompositeAlarm")
    components = {
        name
        for composite in composites.values()
        for name in re.findall(
            r"\$\{([A-Za-z0-9]+)\.Arn\}", composite["Properties"]["AlarmRule"]["Fn::Sub"]
        )
    }
    for name in components:
        assert resources[name]["Type"] == "AWS::CloudWatch::Alarm", name
        assert "AlarmActions" not in resources[name]["Properties"], (
            f"component {name} must not page"
        )
    for name, alarm in {**_of_type(resources, "AWS::CloudWatch::Alarm"), **composites}.items():
        if name not in components:
            assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


def test_no_minute_executions_is_market_open_and_no_starts(resources):
    rule = resources["NoMinuteExecutionsAlarm"]["Properties"]["AlarmRule"]["Fn::Sub"]
    assert rule == 'ALARM("${MarketOpenAlarm.Arn}") AND ALARM("${MinuteStartsAbsentAlarm.Arn}")'
    starts = resources["MinuteStartsAbsentAlarm"]["Properties"]
    assert starts["MetricName"] == "ExecutionsStarted" and starts["TreatMissingData"] == "breaching"
    assert starts["Dimensions"] == [
        {"Name": "StateMachineArn", "Value": {"Ref": "MinutePipelineStateMachine"}}
    ]
    market = resources["MarketOpenAlarm"]["Properties"]
    assert market["MetricName"] == "MarketOpen" and market["TreatMissingData"] == "notBreaching"


def test_custom_metric_alarms_match_what_the_code_emits(resources):
    """Alarms on OpsPipeline metrics use dimension service=ops-pipeline (Powertools default), plus
    mode for the dispatcher's order metrics; the names are the ones the code emits."""
    emitted = set()
    for path in _code_files():
        for node in ast.walk(_parse(path)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "add_metric":
                for kw in node.keywords:
                    if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                        emitted.add(kw.value.value)
            elif (
                isinstance(func, ast.Name)
                and func.id == "Metric"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                # health.Metric("BarAgeSeconds", ...): the healthcheck's metric list
                emitted.add(node.args[0].value)
    assert {"BarAgeSeconds", "OrdersRejected"} <= emitted, "the metric scan found nothing"
    for name, alarm in _of_type(resources, "AWS::CloudWatch::Alarm").items():
        for metric in _metric_stats(alarm):
            if metric["Namespace"] != "OpsPipeline":
                continue
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            assert dims.get("service") == "ops-pipeline", name
            if metric["MetricName"].startswith("Orders"):
                assert set(dims) == {"service", "mode"}, name
            else:
                assert set(dims) == {"service"}, name
            assert metric["MetricName"] in emitted, (
                f"{name} watches {metric['MetricName']}, which no code emits"
            )


def test_required_alarms_exist(resources):
    alarms = _of_type(resources, "AWS::CloudWatch::Alarm")
    watched = {(m["Namespace"], m["MetricName"]) for a in alarms.values() for m in _metric_stats(a)}
    for needed in [
        ("OpsPipeline", "BarAgeSeconds"),
        ("OpsPipeline", "MarketOpen"),
        ("AWS/States", "ExecutionsStarted"),
        ("AWS/States", "ExecutionsFailed"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("OpsPipeline", "OrdersRejected"),
        ("OpsPipeline", "CredentialsMissing"),  # the Alpaca secret still holds its placeholder
    ]:
        assert needed in watched, needed
    errors = {
        _ref(d["Value"])
        for a in alarms.values()
        for m in _metric_stats(a)
        if m["MetricName"] == "Errors"
        for d in m["Dimensions"]
    }
    assert errors == set(EXPECTED_FUNCTIONS) - {"DbMigrateFunction"}


def test_the_database_grows_and_says_when_it_cannot(resources, template):
    """Storage autoscaling up to DbMaxAllocatedStorage (0 turns it off), and an alarm on the
    instance's free storage, created or existing, with its runbook."""
    db = resources["Database"]["Properties"]
    assert db["MaxAllocatedStorage"] == {
        "Fn::If": [
            "DbStorageAutoscaling",
            {"Ref": "DbMaxAllocatedStorage"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert (
        template["Parameters"]["DbMaxAllocatedStorage"]["Default"]
        > (template["Parameters"]["DbAllocatedStorage"]["Default"])
    )
    alarm = resources["DatabaseStorageLowAlarm"]
    assert alarm["Condition"] == "HasDbInstance"
    props = alarm["Properties"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/RDS", "FreeStorageSpace")
    (dimension,) = props["Dimensions"]
    assert dimension["Value"] == {
        "Fn::If": ["CreateDb", {"Ref": "Database"}, {"Ref": "ExistingDbInstanceIdentifier"}]
    }
    assert "docs/deploy.md#database-storage-low" in props["AlarmDescription"]
    assert "### database-storage-low" in (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


def _dashboard(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The dashboard's body and its Fn::Sub variables (the database's, which follow CreateDatabase)."""
    body, variables = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return body, variables


def test_dashboard_body_is_json(resources):
    body, variables = _dashboard(resources)
    names = set(re.findall(r"\$\{([A-Za-z0-9_:.]+)\}", body))
    for name in names:
        base = name.split(".")[0]
        assert (
            base.startswith("AWS::")
            or base in resources
            or base in variables
            or base == "DataGapThresholdSeconds"
        ), name
    for storage_alarm in ('"arn:x", ', ""):  # with the database's storage alarm, and without
        rendered = body.replace("${DbStorageAlarm}", storage_alarm)
        rendered = re.sub(r"\$\{DataGapThresholdSeconds\}", "300", rendered)
        rendered = re.sub(r"\$\{[A-Za-z0-9_:.]+\}", "x", rendered)
        widgets = json.loads(rendered)["widgets"]
    titles = " ".join(w["properties"].get("title", "") for w in widgets).lower()
    for word in ("executions", "data age", "recommendations", "mode", "durations", "database"):
        assert word in titles, word
    (alarms,) = [w["properties"]["alarms"] for w in widgets if w["type"] == "alarm"]
    listed = {
        a.removeprefix("${").removesuffix(".Arn}") for a in re.findall(r"\$\{\w+\.Arn\}", body)
    }
    composites = _of_type(resources, "AWS::CloudWatch::CompositeAlarm").values()
    parts = {  # a composite's parts show through the composite
        name
        for c in composites
        for name in re.findall(r"\$\{(\w+)\.Arn\}", c["Properties"]["AlarmRule"]["Fn::Sub"])
    }
    alarms_made = set(_of_type(resources, "AWS::CloudWatch::Alarm")) | {
        n for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::CompositeAlarm"
    }
    assert listed | {"DatabaseStorageLowAlarm"} == alarms_made - parts  # every alarm on the board
    assert variables["DbStorageAlarm"] == {
        "Fn::If": ["HasDbInstance", {"Fn::Sub": '"${DatabaseStorageLowAlarm.Arn}", '}, ""]
    }


def test_outputs(template):
    outputs = template["Outputs"]
    for key in (
        "MinutePipelineStateMachineArn",
        "FiveMinutePipelineStateMachineArn",
        "DashboardUrl",
        "AlpacaSecretArn",
        "AlarmTopicArn",
        "DbProxyEndpoint",
    ):
        assert key in outputs, key


def test_no_secret_values_in_the_template():
    text = TEMPLATE.read_text(encoding="utf-8")
    assert not re.search(r"\b(AK|PK)[A-Z0-9]{16,}\b", text), (
        "something that looks like an API key id"
    )


def test_the_market_data_failover_has_its_secret_alarm_and_dashboard(resources, template):
    """The backup's key is a secret of its own that only the ingestor reads; the metric the
    ingestor emits (BackupSourceInUse) pages, and the dashboard shows it with the switches."""
    assert resources["MassiveSecret"]["Type"] == "AWS::SecretsManager::Secret"
    assert "REPLACE_ME" in resources["MassiveSecret"]["Properties"]["SecretString"]
    readers = [
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::Serverless::Function"
        and _ref(
            r["Properties"].get("Environment", {}).get("Variables", {}).get("MASSIVE_SECRET_ARN")
        )
        == "MassiveSecret"
    ]
    assert readers == ["TelemetryIngestorFunction"]
    alarm = resources["MarketDataFailoverAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("OpsPipeline", "BackupSourceInUse")
    assert "docs/deploy.md#market-data-failover" in alarm["AlarmDescription"]
    assert "### market-data-failover" in (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    body, _ = _dashboard(resources)
    assert "BackupSourceInUse" in body and "MarketDataSourceSwitches" in body
    assert "${MarketDataFailoverAlarm.Arn}" in body
    assert "MassiveSecretArn" in template["Outputs"]


# --------------------------------------------------------------------------------------------
# The backtest state machine (docs/deploy.md#backtests)
# --------------------------------------------------------------------------------------------
BACKTEST_FUNCTIONS = EXPECTED_STATE_MACHINES["MinutePipelineStateMachine"][1]


def _backtest_tasks() -> list[tuple[str, dict[str, Any]]]:
    definition = json.loads((ROOT / "statemachines/backtest.asl.json").read_text("utf-8"))
    return [(n, s) for n, s in _task_states(definition) if s["Resource"].startswith("${")]


def test_the_backtest_machine_runs_the_minute_pipeline_s_functions(template, resources):
    props = resources["BacktestStateMachine"]["Properties"]
    assert props["DefinitionUri"] == "statemachines/backtest.asl.json"
    assert props["Type"] == "STANDARD" and props["Tracing"] == {"Enabled": True}
    log_group = props["Logging"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert resources[log_group["Fn::GetAtt"][0]]["Properties"]["RetentionInDays"] == {
        "Ref": "LogRetentionDays"
    }
    subs = props["DefinitionSubstitutions"]
    assert subs == {
        **{f"{f}Arn": {"Fn::GetAtt": [f, "Arn"]} for f in BACKTEST_FUNCTIONS},
        "BacktestBucketName": {"Ref": "BacktestBucket"},
        "TradingModeParameterName": {"Ref": "TradingModeParameter"},
    }
    text = (ROOT / props["DefinitionUri"]).read_text("utf-8")
    assert set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text)) == set(subs)
    invokable = {
        _ref(p["LambdaInvokePolicy"]["FunctionName"])
        for p in props["Policies"]
        if isinstance(p, dict) and "LambdaInvokePolicy" in p
    }
    assert invokable == set(BACKTEST_FUNCTIONS)
    tasks = _backtest_tasks()
    assert {_task_function(s) for _, s in tasks} == set(BACKTEST_FUNCTIONS)
    for name, state in tasks:
        timeout = _function_timeout(template, _task_function(state))
        assert state["TimeoutSeconds"] >= timeout, name


def test_the_backtest_reads_its_bucket_and_the_trading_mode_and_starts_its_children(resources):
    policies = resources["BacktestStateMachine"]["Properties"]["Policies"]
    assert {"S3ReadPolicy": {"BucketName": {"Ref": "BacktestBucket"}}} in policies
    assert {
        "SSMParameterWithSlashPrefixReadPolicy": {"ParameterName": {"Ref": "TradingModeParameter"}}
    } in policies
    statements = [s for p in policies if isinstance(p, dict) for s in p.get("Statement", [])]
    by_action = {a: s["Resource"] for s in statements for a in _actions(s)}
    # Distributed Map children are executions of the machine itself, and only of it.
    assert by_action["states:StartExecution"]["Fn::Sub"].endswith(
        ":stateMachine:${AWS::StackName}-backtest"
    )
    assert by_action["states:DescribeExecution"]["Fn::Sub"].endswith(
        ":execution:${AWS::StackName}-backtest/*"
    )
    name = resources["BacktestStateMachine"]["Properties"]["Name"]
    assert name == {"Fn::Sub": "${AWS::StackName}-backtest"}


def test_the_backtest_bucket_is_private_encrypted_and_expires(resources):
    props = resources["BacktestBucket"]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] >= 1


def test_no_schedule_starts_a_backtest(resources):
    schedules = _of_type(resources, "AWS::Scheduler::Schedule")
    assert "BacktestStateMachine" not in {
        _ref(s["Properties"]["Target"]["Arn"]) for s in schedules.values()
    }
