"""The beat schedule of kgcelery; ``kgcelery.app`` loads it.

Every entry runs on the ``control`` queue and carries ``expires``, so that runs do
not pile up while the control worker is down: a late run is dropped, the next one
comes soon enough.
"""

from __future__ import annotations

from typing import Any

from kgcelery.settings import Settings


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "expire-stale-clients": {
            "task": "kgcelery.expire_stale_clients",
            "schedule": settings.expiry_interval_s,
            "options": {"queue": "control", "expires": settings.expiry_interval_s},
        },
    }
