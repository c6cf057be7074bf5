"""`config.alpaca_credentials` against a Secrets Manager secret in moto: which contents count as
"credentials missing" (the stack's placeholder, empty fields), which are errors, which are keys."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from ops_pipeline import config
from ops_pipeline.errors import ConfigError

REGION = "us-east-1"


@pytest.fixture
def secret_arn(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        parameters.clear_caches()
        arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="ops-pipeline-AlpacaSecret", SecretString="{}"
        )["ARN"]
        monkeypatch.setenv(config.ALPACA_SECRET_ARN, arn)
        yield arn
    parameters.clear_caches()


def holding(arn: str, secret_string: str) -> None:
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=arn, SecretString=secret_string
    )
    parameters.clear_caches()


@pytest.mark.parametrize(
    "secret",
    [
        {"key_id": "REPLACE_ME", "secret_key": "REPLACE_ME"},  # as template.yaml creates it
        {"key_id": "PKTESTKEYID", "secret_key": "REPLACE_ME"},  # half filled in
        {"key_id": "", "secret_key": "s3cr3t"},
        {"key_id": "PKTESTKEYID"},
        {},
    ],
)
def test_placeholder_or_empty_keys_are_credentials_missing(secret_arn, secret):
    holding(secret_arn, json.dumps(secret))
    with pytest.raises(config.CredentialsMissingError) as raised:
        config.alpaca_credentials()
    assert "placeholder" in str(raised.value)
    assert isinstance(raised.value, ConfigError)  # still a configuration error for other stages


@pytest.mark.parametrize("secret_string", ["not json", '["key", "secret"]'])
def test_a_malformed_secret_is_a_config_error_not_missing_credentials(secret_arn, secret_string):
    holding(secret_arn, secret_string)
    with pytest.raises(ConfigError) as raised:
        config.alpaca_credentials()
    assert not isinstance(raised.value, config.CredentialsMissingError)


def test_real_looking_keys_are_returned_and_never_printed(secret_arn):
    holding(secret_arn, json.dumps({"key_id": "PKTESTKEYID", "secret_key": "s3cr3t-value"}))
    credentials = config.alpaca_credentials()
    assert (credentials.key_id, credentials.secret_key) == ("PKTESTKEYID", "s3cr3t-value")
    assert "s3cr3t" not in repr(credentials) and "PKTEST" not in repr(credentials)
