"""Classifier: sentiment and tickers for every new raw event, into `inbound_events_classified`."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import config
from ops_pipeline.db import ConnectionCache
from ops_pipeline.event_time import event_minute
from ops_pipeline.news import classifier_stage
from ops_pipeline.observability import metrics, stage_handler

DB = ConnectionCache()


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = classifier_stage.run(DB.get(), config.tickers(), event_minute(event))
    metrics.add_metric(name="EventsClassified", unit="Count", value=summary["classified"])
    metrics.add_metric(
        name="EventsClassificationFailed", unit="Count", value=len(summary["failed_event_ids"])
    )
    return summary
