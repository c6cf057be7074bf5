"""Run the real state machines on one machine.

moto's Amazon States Language interpreter executes `statemachines/*.asl.json` as written, with
the substitutions `template.yaml` declares. Its Lambda tasks call `lambda.invoke` through boto3's
default session; a botocore hook on that session hands each invoke to our real handler, in this
process, and answers with Lambda's response shape (including its error shape, so `Retry` and
`Catch` see the exception's class name as the error). SSM parameters and the Alpaca secret are
created in moto from the template, so the handlers read their settings exactly as in AWS.

Costs of moto's interpreter that say nothing about our pipeline are removed while a runtime is
open (see `MotoShortcuts`): the ASL definition is parsed once per definition instead of once per
execution, JSONPath strings once each instead of at every use, Lambda tasks share one boto3 client
instead of building one per task, the caller waits on the execution's thread instead of polling
`describe_execution`, and moto keeps only the newest finished executions. The interpreter still
evaluates the real definition, state by state, for every execution.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import io
import json
import logging
import os
import secrets
import sys
import threading
import traceback
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

from ops_pipeline_local.template import ACCOUNT, REGION, FunctionSpec, Stack

LOCAL_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "OpsPipeline",
}


KEEP_EXECUTIONS = 100  # finished executions per state machine that moto keeps (history, describe)


@dataclass(frozen=True)
class ExecutionResult:
    name: str
    status: str
    output: dict[str, Any] | None
    error: str | None = None
    cause: str | None = None


@dataclass
class LocalContext:
    """The parts of Lambda's context object that Powertools reads."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = ""
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def project_root() -> Path:
    """The checkout this package runs from (it holds template.yaml), else the working directory."""
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd(), *Path.cwd().parents):
        if (candidate / "template.yaml").is_file():
            return candidate
    raise FileNotFoundError("template.yaml not found: run ops-pipeline from the project checkout")


def _load_handler(spec: FunctionSpec) -> Callable[[dict[str, Any], Any], Any]:
    module_file, _, attribute = spec.handler.rpartition(".")
    path = spec.code_dir / f"{module_file}.py"
    module_spec = importlib.util.spec_from_file_location(f"ops_fn_{spec.logical_id}", path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, attribute)


def _lambda_response(
    payload: dict[str, Any], function_error: str | None = None
) -> tuple[Any, dict[str, Any]]:
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders
    from botocore.response import StreamingBody

    body = json.dumps(payload).encode()
    parsed: dict[str, Any] = {
        "ResponseMetadata": {"HTTPStatusCode": 200},
        "StatusCode": 200,
        "ExecutedVersion": "$LATEST",
        "Payload": StreamingBody(io.BytesIO(body), len(body)),
    }
    if function_error:
        parsed["FunctionError"] = function_error
    return AWSResponse("local", 200, HTTPHeaders(), None), parsed


class _StandIn:
    """Stands for a deferred package's attribute (a backend registry) until it is used."""

    def __init__(self, resolve: Callable[[], Any]) -> None:
        self._resolve = resolve

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._resolve(), attribute)

    def __getitem__(self, key: Any) -> Any:
        return self._resolve()[key]

    def __iter__(self) -> Any:
        return iter(self._resolve())


def _defer_package(name: str, stand_ins: tuple[str, ...] = ()) -> None:
    """Register package `name` without running its `__init__` until one of its own attributes is
    used (its submodules import as usual); `stand_ins` are attributes that another module only
    imports by name, handed out as `_StandIn`s that load the package when they are used.

    moto's Step Functions interpreter imports `moto.batch.utils` for one enum, and moto's SSM
    imports `moto.ec2`'s backend registry for one feature (maintenance-window targets): their
    `__init__`s load the Batch, EC2, ECS and IAM models, 1.6 s of a replay's 5 s start-up, for
    services the stack never calls. The deferral stays for the process: the first use loads the
    package as an import would have."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    lock = threading.RLock()

    def load() -> ModuleType:
        with lock:
            if "__getattr__" in module.__dict__:
                hook = module.__dict__.pop("__getattr__")
                try:
                    loader.exec_module(module)
                except BaseException:
                    module.__dict__["__getattr__"] = hook  # the next use tries again
                    raise
        return module

    def on_use(attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        if attribute in stand_ins:
            return _StandIn(lambda: getattr(load(), attribute))
        return getattr(load(), attribute)

    module.__dict__["__getattr__"] = on_use
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)  # `moto.ec2` as an attribute, as an import


class MotoShortcuts:
    """Per-runtime caches around moto's Step Functions interpreter (moto 5.2's parser package).

    - `AmazonStateLanguageParser.parse` (an ANTLR parse plus a preprocessing pass) runs for every
      execution; its result is a tree of evaluation components that keep no per-execution state
      (retry counters and the like live in the execution's `Environment`, keyed by component), so
      one parsed program per definition string serves every execution of that definition.
    - Lambda tasks call `boto_client_for(region, "lambda")`, which builds a new boto3 client (and
      loads its service model) for every task; boto3 clients are thread-safe, so one per region
      and service is shared, built from the default session that carries the invoke hook.
    - JSONPath expressions (`ResultPath`, `InputPath`, `OutputPath`, `.$` parameters) are parsed
      by jsonpath-ng (a PLY lexer and parser) every time a state evaluates one: a third of the
      interpreter's own time. The parsed expression is immutable (`find` and `update_or_create`
      read it), so each distinct path string is parsed once.
    - An execution runs on a thread moto starts and records in `TMP_THREADS`; `execute` joins
      it instead of polling.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._programs: dict[str, Any] = {}
        self._parse: Callable[[str], Any] = lambda definition: None
        self._clients: dict[tuple[str, str], Any] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        _defer_package("moto.batch")
        _defer_package("moto.ec2", stand_ins=("ec2_backends",))
        from moto.stepfunctions.parser.asl.component.common.path import result_path
        from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
            lambda_eval_utils,
        )
        from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
        from moto.stepfunctions.parser.asl.utils import json_path

        shortcuts = self
        self._parse = AmazonStateLanguageParser.parse

        def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            return shortcuts.client(region, service)

        # moto's validation at creation and every execution's entry point both call parse
        self._patch(AmazonStateLanguageParser, "parse", staticmethod(self.parse))
        self._patch(lambda_eval_utils, "boto_client_for", client_for)
        for module in (json_path, result_path):
            self._patch(module, "parse", functools.lru_cache(maxsize=1024)(module.parse))

    def uninstall(self) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)
        self._programs.clear()
        self._clients.clear()

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        # as stored on the owner (a staticmethod stays one when it is put back)
        self._undo.append((owner, name, inspect.getattr_static(owner, name)))
        setattr(owner, name, replacement)

    def parse(self, definition: str) -> Any:
        """moto's parse, once per definition: creating a state machine (moto validates it by
        parsing) and every execution of it share one parsed program."""
        parsed = self._programs.get(definition)
        if parsed is None:
            parsed = self._parse(definition)
            with self._lock:
                parsed = self._programs.setdefault(definition, parsed)
        return parsed

    def client(self, region: str, service: str) -> Any:
        import boto3
        from botocore.config import Config
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import (
            TimeoutSeconds,
        )

        key = (region, service)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                # As moto's boto_client_for builds it: no retries, no validation, in-process.
                client = boto3.client(
                    service,  # type: ignore[call-overload]
                    region_name=region,
                    aws_access_key_id="ak",
                    aws_secret_access_key="sk",
                    config=Config(
                        parameter_validation=False,
                        retries={"max_attempts": 0, "total_max_attempts": 1},
                        connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                    ),
                )
                self._clients[key] = client
            return client

    @staticmethod
    def threads() -> list[threading.Thread]:
        from moto.stepfunctions.parser.utils import TMP_THREADS

        threads: list[threading.Thread] = TMP_THREADS
        return threads


class LocalRuntime:
    """moto's AWS with our stack in it: parameters, the secret, functions and state machines."""

    def __init__(
        self,
        *,
        database_url: str,
        parameters: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        root: Path | None = None,
    ) -> None:
        self.root = root or project_root()
        self.database_url = database_url
        self.parameter_overrides = parameters or {}
        self.extra_env = env or {}
        self.alpaca_key_id = f"LOCAL{secrets.token_hex(8).upper()}"
        self.alpaca_secret_key = secrets.token_urlsafe(24)
        # The backup market data's key (MassiveSecret): None leaves the template's placeholder,
        # so the stack runs without failover. `backup_market_data`: its local server, if any.
        self.massive_api_key: str | None = None
        self.backup_market_data: Any = None
        self.invocations: list[tuple[str, dict[str, Any]]] = []
        # Keys added to every event of a function (by logical id) that does not carry them: a
        # replay of one sweep setting hands it to the stages that read it, as the backtest does.
        self.event_defaults: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}  # one per function: see `invoke`
        self._locks_lock = threading.Lock()
        self._saved_env: dict[str, str | None] = {}
        self._mock: Any = None
        self._shortcuts = MotoShortcuts()

    def __enter__(self) -> LocalRuntime:
        from moto import mock_aws

        self._set_env(LOCAL_ENV)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        self._shortcuts.install()
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
        # A stage with nothing to count is normal; Powertools warns about it on every invoke.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        try:
            self._build()
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._shortcuts.uninstall()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _build(self) -> None:
        import boto3
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        # boto3's default session, made here (as boto3.setup_default_session would) rather than
        # by the first boto3.client below: moto's Lambda tasks invoke through it, so the invoke
        # hook goes on it. mock_aws starts each run without one and restores the old on stop.
        session = boto3.Session()
        boto3.DEFAULT_SESSION = session
        self.stack = Stack.load(self.root, self.parameter_overrides)
        resolver = self.stack.resolver
        ssm = boto3.client("ssm", region_name=REGION)
        for name, value in self.stack.ssm_parameters().items():
            ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
        sm = boto3.client("secretsmanager", region_name=REGION)
        for logical_id, name in self.stack.secrets().items():
            secret = {"key_id": self.alpaca_key_id, "secret_key": self.alpaca_secret_key}
            if logical_id == "MassiveSecret":
                secret = {"api_key": self.massive_api_key or "REPLACE_ME"}
            resolver.refs[logical_id] = sm.create_secret(
                Name=name, SecretString=json.dumps(secret)
            )["ARN"]
        machines = self.stack.state_machines()
        for logical_id in machines:
            resolver.refs[logical_id] = (
                f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{logical_id}"
            )
        self.functions = self.stack.functions()
        env: dict[str, str] = {}
        for spec in self.functions.values():
            env.update(spec.environment)
        env.update({"DATABASE_URL": self.database_url, **self.extra_env})
        self._set_env(env)
        self.handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}

        # A before-call handler that returns a response short-circuits the call; botocore-stubs
        # types every handler as returning None.
        session.events.register("before-call.lambda.Invoke", self._invoke)  # type: ignore[arg-type]
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.machines = machines
        self.machine_arns: dict[str, str] = {}
        # The scheduled machines now; one started by hand (the backtest) at its first execution,
        # so that a replay does not pay for parsing a definition it never runs.
        scheduled = {
            str(schedule["Properties"]["Target"]["Arn"].get("Ref"))
            for schedule in self.stack.resources("AWS::Scheduler::Schedule").values()
        }
        for logical_id in machines:
            if logical_id in scheduled:
                self._create_machine(logical_id)

    def _create_machine(self, logical_id: str) -> str:
        created = self.sfn.create_state_machine(
            name=logical_id,
            definition=self.machines[logical_id].definition(self.functions),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/{logical_id}Role",
        )
        self.machine_arns[logical_id] = created["stateMachineArn"]
        return self.machine_arns[logical_id]

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        """Call a function's real handler with an event, as Lambda would; its exceptions propagate.

        Each function is one container here: it runs one invocation at a time, as a Lambda
        container does (its module state, such as the cached database connection, is never
        shared by two invocations). A Distributed Map's children that call the same function
        at once take turns; in AWS each would have a container of its own."""
        with self._container_lock(logical_id):
            return self._invoke_handler(logical_id, event)

    def _container_lock(self, logical_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(logical_id, threading.Lock())

    def _invoke_handler(self, logical_id: str, event: dict[str, Any]) -> Any:
        if logical_id not in self.handlers:  # loaded on first use, as a cold start would
            self.handlers[logical_id] = _load_handler(self.functions[logical_id])
        if defaults := self.event_defaults.get(logical_id):
            event = {**defaults, **event}
        self.invocations.append((logical_id, event))
        spec = self.functions[logical_id]
        context = LocalContext(
            logical_id,
            spec.arn,
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{logical_id}",
        )
        try:
            return self.handlers[logical_id](event, context)
        finally:
            # With metrics disabled, Powertools never clears its metric set; a Lambda container
            # would start the next invoke clean, so do the same here.
            from ops_pipeline.observability import metrics

            metrics.clear_metrics()

    def _invoke(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        """The botocore hook: answer moto's `lambda:Invoke` with the handler's result or error."""
        path = unquote(params["url_path"])
        target = path.split("/functions/", 1)[1].rsplit("/invocations", 1)[0]
        logical_id = target.rsplit(":", 1)[-1]
        event = json.loads(params["body"] or b"{}")
        try:
            return _lambda_response(self.invoke(logical_id, event))
        except Exception as exc:
            return _lambda_response(
                {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc)[-3:],
                },
                function_error="Unhandled",
            )

    def _forget_old_executions(self, machine_arn: str) -> None:
        """Keep the newest KEEP_EXECUTIONS finished executions of a machine in moto, not all.

        moto holds every execution with its event history and scans them on every start and
        describe; a week replayed minute by minute is thousands of them.
        """
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        machine = stepfunctions_parser_backends[ACCOUNT][REGION].describe_state_machine(machine_arn)
        executions = machine.executions
        if len(executions) > 2 * KEEP_EXECUTIONS:
            old = executions[:-KEEP_EXECUTIONS]
            if all(e.status != "RUNNING" for e in old):
                del executions[:-KEEP_EXECUTIONS]

    def execute(
        self, machine: str, payload: dict[str, Any], name: str | None = None, timeout: float = 300
    ) -> ExecutionResult:
        """Start an execution of a state machine (by logical id) and wait for it to finish."""
        name = name or f"local-{uuid.uuid4().hex[:12]}"
        if machine not in self.machine_arns:
            self._create_machine(machine)
        threads = MotoShortcuts.threads()
        before = len(threads)
        arn = self.sfn.start_execution(
            stateMachineArn=self.machine_arns[machine], name=name, input=json.dumps(payload)
        )["executionArn"]
        # moto appends the execution's thread while start_execution runs (threads it starts
        # later, for Parallel branches, come after it): wait for it to end, then describe once.
        if len(threads) > before:
            worker = threads[before]
            worker.join(timeout)
            if worker.is_alive():
                raise TimeoutError(f"execution {name} still running after {timeout} s")
            del threads[before:]  # this execution's threads: moto never prunes the list
        described = self.sfn.describe_execution(executionArn=arn)
        if described["status"] == "RUNNING":
            raise RuntimeError(f"execution {name} ended its thread but is still RUNNING")
        self._forget_old_executions(self.machine_arns[machine])
        output = described.get("output")
        return ExecutionResult(
            name=name,
            status=described["status"],
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
        )
