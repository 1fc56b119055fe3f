"""Log setup for the server process: one line per event, no request content.

Loggers: `pictale.access` (one line per request: id, method, route, status, duration, error
code) and `pictale.server` (startup, model loading, failures by exception type). Prompts,
outputs and images are never logged by the serving layer.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("pictale")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
