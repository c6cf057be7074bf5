"""Feature computer: moving averages and volume analysis for every bar without features."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ops_pipeline import features
from ops_pipeline.db import ConnectionCache
from ops_pipeline.event_time import event_minute
from ops_pipeline.observability import metrics, stage_handler

DB = ConnectionCache()


@stage_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = features.compute(DB.get(), event_minute(event))
    metrics.add_metric(name="FeaturesComputed", unit="Count", value=summary["computed"])
    return summary
