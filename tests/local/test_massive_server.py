"""The local Massive through Massive's official client (`massive.RESTClient`), as the backup
ingestor uses it: minute aggregates by ticker, paged with `next_url`, only closed bars, the key
checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from massive import RESTClient
from massive.exceptions import BadResponse

from ops_pipeline import massive
from ops_pipeline.errors import ConfigError
from ops_pipeline_local.massive_server import LocalMassive

NOW = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)
START = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)


@pytest.fixture
def aapl(bundled_bars):
    return [b for b in bundled_bars if b.symbol == "AAPL"]


def test_the_official_client_pages_through_closed_minutes_only(aapl):
    with LocalMassive(aapl, "k3y", now=NOW, page_size=7) as server:
        client = RESTClient(api_key="k3y", base=server.base_url, retries=0)
        aggs = list(client.list_aggs("AAPL", 1, "minute", START, NOW + timedelta(hours=1)))
        assert [datetime.fromtimestamp(a.timestamp / 1000, UTC) for a in aggs] == [
            b.ts for b in aapl if b.ts + timedelta(minutes=1) <= NOW
        ]
        assert aggs[0].volume == aapl[0].volume and aggs[0].open == float(aapl[0].open)
        assert len(server.requests) == 5  # 30 bars, 7 a page


def test_a_wrong_key_is_refused_and_the_ingestor_calls_it_a_configuration_error(aapl):
    with LocalMassive(aapl, "k3y", now=NOW) as server:
        client = RESTClient(api_key="nope", base=server.base_url, retries=0)
        with pytest.raises(BadResponse, match="Unknown API Key"):
            list(client.list_aggs("AAPL", 1, "minute", START, NOW))
        with pytest.raises(ConfigError, match="Massive refused"):
            massive.request_bars(client, ["AAPL"], START, NOW)


def test_a_delayed_plan_holds_the_last_minutes_back(aapl):
    with LocalMassive(aapl, "k3y", now=NOW, delay=timedelta(minutes=15)) as server:
        client = RESTClient(api_key="k3y", base=server.base_url, retries=0)
        bars = massive.request_bars(client, ["AAPL"], START, NOW)["AAPL"]
        assert bars[-1]["t"] == NOW - timedelta(minutes=16)
