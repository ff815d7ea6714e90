"""ToolHub's Prometheus metrics (names fixed by the observability issue).

``tom_tool_calls`` is a Counter, which prometheus_client exports as
``tom_tool_calls_total``; the latency histogram is in milliseconds as its name says.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TOOL_CALLS = Counter("tom_tool_calls", "Tool calls made, by tool and source.",
                     ["tool", "source"])
TOOL_CALLS_FAILED = Counter(
    "tom_tool_calls_failed",
    "Tool calls that failed (bad arguments, timeout, error), by tool and source.",
    ["tool", "source"])
TOOL_LATENCY_MS = Histogram(
    "tom_tool_latency_ms", "Tool call latency in milliseconds, by tool and source.",
    ["tool", "source"],
    buckets=(5, 10, 25, 50, 100, 150, 250, 500, 1000, 2000, 5000),
)
