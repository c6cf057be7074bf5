"""Read `template.yaml` so the local run uses the same names the deployed stack does.

Functions, their handlers and environment, the state machines and their substitutions, the SSM
parameters and the Alpaca secret are all taken from the template; nothing is restated here.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STACK_NAME = "ops-pipeline-local"
REGION = "us-east-1"
ACCOUNT = "123456789012"


# libyaml's loader when PyYAML has it (about ten times faster on the template), else PyYAML's.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_SafeLoader):
    """YAML with CloudFormation's short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...)."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        raise yaml.constructor.ConstructorError(
            None, None, f"unexpected node for !{suffix}", node.start_mark
        )
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path) -> dict[str, Any]:
    """The template as data; parsed once per content (a copy each call: callers may change it)."""
    return copy.deepcopy(_parse(path.read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=4)
def _parse(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=_CfnLoader)


@dataclass
class Resolver:
    """Evaluates the intrinsic functions the local run needs, with the stack's parameter defaults."""

    template: dict[str, Any]
    overrides: dict[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # logical id -> what Ref returns locally

    def parameter(self, name: str) -> Any:
        if name in self.overrides:
            return self.overrides[name]
        return self.template.get("Parameters", {}).get(name, {}).get("Default", "")

    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::StackName": STACK_NAME,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }.get(name)

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.template.get("Parameters", {}):
            return self.parameter(name)
        if name in self.refs:
            return self.refs[name]
        resource = self.template.get("Resources", {}).get(name)
        if resource and resource.get("Type") == "AWS::SSM::Parameter":
            return self.resolve(resource["Properties"]["Name"])
        if resource and resource.get("Type") == "AWS::S3::Bucket":  # a valid bucket name
            return f"{STACK_NAME}-{name.lower()}"
        return f"local-{name}"

    def get_att(self, logical: str, attribute: str) -> str:
        kind = self.template.get("Resources", {}).get(logical, {}).get("Type")
        if attribute == "Arn" and kind == "AWS::Serverless::Function":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical}"
        if attribute == "Arn" and logical in self.refs:
            return self.refs[logical]
        return f"arn:aws:local:{REGION}:{ACCOUNT}:{logical}/{attribute}"

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(logical, attribute)
        if key == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
            return re.sub(
                r"\$\{([^}]+)\}",
                lambda m: str(extra[m[1]] if m[1] in extra else self.ref(m[1].split(".")[0])),
                text,
            )
        if key == "Fn::If":
            name, yes, no = arg
            return self.resolve(yes if self.condition(name) else no)
        if key == "Fn::Equals":
            left, right = self.resolve(arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(str(i) for i in self.resolve(items))
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            sep, text = self.resolve(arg)
            return str(text).split(sep)
        if key == "Condition":
            return self.condition(arg)
        return {key: self.resolve(arg)}


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, str]

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.logical_id}"


@dataclass(frozen=True)
class StateMachineSpec:
    logical_id: str
    definition_path: Path
    substitutions: dict[str, str]  # ${Key} -> function logical id
    values: dict[str, str] = field(default_factory=dict)  # ${Key} -> a resolved name (!Ref)

    def definition(self, functions: dict[str, FunctionSpec]) -> str:
        text = self.definition_path.read_text(encoding="utf-8")
        for key, logical_id in self.substitutions.items():
            text = text.replace("${" + key + "}", functions[logical_id].arn)
        for key, value in self.values.items():
            text = text.replace("${" + key + "}", value)
        leftover = re.findall(r"\$\{([^}]+)\}", text)
        if leftover:
            raise ValueError(
                f"{self.definition_path.name}: no substitution for {sorted(set(leftover))}"
            )
        return text


@dataclass
class Stack:
    root: Path
    template: dict[str, Any]
    resolver: Resolver

    @classmethod
    def load(cls, root: Path, overrides: dict[str, str] | None = None) -> Stack:
        template = load_template(root / "template.yaml")
        return cls(root, template, Resolver(template, overrides or {}))

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            k: v for k, v in self.template.get("Resources", {}).items() if v.get("Type") == kind
        }

    def _env(self, properties: dict[str, Any]) -> dict[str, str]:
        variables = properties.get("Environment", {}).get("Variables", {})
        resolved = {k: self.resolver.resolve(v) for k, v in variables.items()}
        return {k: str(v) for k, v in resolved.items() if v is not None}

    def global_environment(self) -> dict[str, str]:
        """The environment every function gets (the template's `Globals`)."""
        return self._env(self.template.get("Globals", {}).get("Function", {}))

    def functions(self) -> dict[str, FunctionSpec]:
        globals_ = self.template.get("Globals", {}).get("Function", {})
        common = self.global_environment()
        specs = {}
        for logical_id, resource in self.resources("AWS::Serverless::Function").items():
            props = resource.get("Properties", {})
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_dir=self.root / props.get("CodeUri", globals_.get("CodeUri", "")),
                handler=props.get("Handler", globals_.get("Handler", "app.lambda_handler")),
                environment={**common, **self._env(props)},
            )
        return specs

    def state_machines(self) -> dict[str, StateMachineSpec]:
        specs = {}
        for logical_id, resource in self.resources("AWS::Serverless::StateMachine").items():
            props = resource["Properties"]
            subs, values = {}, {}
            for key, value in props.get("DefinitionSubstitutions", {}).items():
                if isinstance(value, dict) and "Fn::GetAtt" in value:
                    target = value["Fn::GetAtt"]
                    subs[key] = target[0] if isinstance(target, list) else target.split(".")[0]
                else:
                    values[key] = str(self.resolver.resolve(value))
            specs[logical_id] = StateMachineSpec(
                logical_id, self.root / props["DefinitionUri"], subs, values
            )
        return specs

    def ssm_parameters(self) -> dict[str, str]:
        """Name -> value of every `AWS::SSM::Parameter`, as the stack would create them."""
        out = {}
        for resource in self.resources("AWS::SSM::Parameter").values():
            props = resource["Properties"]
            out[str(self.resolver.resolve(props["Name"]))] = str(
                self.resolver.resolve(props["Value"])
            )
        return out

    def secrets(self) -> dict[str, str]:
        """Logical id -> name of every `AWS::SecretsManager::Secret`."""
        out = {}
        for logical_id, resource in self.resources("AWS::SecretsManager::Secret").items():
            name = resource.get("Properties", {}).get("Name")
            out[logical_id] = (
                str(self.resolver.resolve(name)) if name else f"{STACK_NAME}-{logical_id}"
            )
        return out
