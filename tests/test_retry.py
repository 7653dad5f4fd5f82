"""The backoff rule shared by tasks, the bridge and the Neo4j store."""

from __future__ import annotations

import pytest

from kgcelery.retry import Backoff


def test_delays_double_up_to_the_cap_and_stay_in_the_jitter_band() -> None:
    backoff = Backoff(0.5, 10.0)
    assert [backoff.ceiling(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    for attempt in range(8):
        delays = {backoff.delay(attempt) for _ in range(200)}
        ceiling = backoff.ceiling(attempt)
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1, "jitter spreads retries of workers that failed together"
    assert backoff.ceiling(10_000) == 10.0  # no overflow after a long outage


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 5.0)])
def test_a_backoff_that_never_waits_or_shrinks_is_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(base, cap)
