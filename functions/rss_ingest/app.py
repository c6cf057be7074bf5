"""RSS ingest stage: fetch the configured feeds, store their new items in `inbound_events_raw`."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import config
from ops_pipeline.db import ConnectionCache
from ops_pipeline.event_time import event_minute
from ops_pipeline.news import rss
from ops_pipeline.observability import stage_handler

DB = ConnectionCache()


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return rss.ingest(DB.get(), config.feeds(), event_minute(event))
