"""Metrics shared by every component, and the Celery worker's exporter.

``tom_errors_total{component}`` counts failures that were caught and logged (a turn that
crashed, a tool that raised, a task that failed) so an operator sees them as a rate,
not only in the logs.

Celery's prefork children each count in their own memory; with
``PROMETHEUS_MULTIPROC_DIR`` set (the systemd unit and ``tom_run`` set it) they write to
shared files and the exporter in the main worker process sums them
(prometheus_client's multiprocess mode). Without it the exporter serves this process's
registry (a solo or threaded worker).
"""

from __future__ import annotations

import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, start_http_server

logger = logging.getLogger(__name__)

COMPONENTS = ("fork", "session", "stt", "llm", "tts", "toolhub", "celery", "greenlights",
              "web", "live", "recording")
ERRORS = Counter("tom_errors", "Errors caught and logged, by component.", ["component"])
for _component in COMPONENTS:  # every series exists from the start, at zero
    ERRORS.labels(component=_component)


def error_count(*, component: str) -> None:
    ERRORS.labels(component=component if component in COMPONENTS else "web").inc()


def worker_exporter_start(*, port: int, address: str = "127.0.0.1") -> bool:
    """Serve the worker's metrics on ``address:port``; False if it could not bind."""
    if not port:
        return False
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        logger.warning("metrics.worker_exporter_failed", extra={"port": port,
                                                                "error": str(exc)})
        return False
    logger.info("metrics.worker_exporter_started", extra={"port": port})
    return True
