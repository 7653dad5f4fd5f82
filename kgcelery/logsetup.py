"""Logging for kgcelery's own processes (Celery processes configure their own)."""

from __future__ import annotations

import logging


def configure(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # librdkafka and kombu are chatty at INFO.
    logging.getLogger("kombu").setLevel(logging.WARNING)
    logging.getLogger("celery").setLevel(logging.WARNING)
