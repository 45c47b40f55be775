"""Pure metric functions (features or image tensors in, numbers out)."""
from .registry import METRICS, MetricInfo, metric_info

__all__ = ["METRICS", "MetricInfo", "metric_info"]
