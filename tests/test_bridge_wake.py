"""When the bridge asks for a scaling run out of turn (kgcelery.bridge.wake): pure logic."""

from __future__ import annotations

from kgcelery.bridge.wake import Wake


def test_a_client_first_seen_wakes_once_and_busy_clients_do_not() -> None:
    wake = Wake(quiet_after_s=300.0, every_s=2.0)
    assert not wake.due(0.0)
    wake.published("acme", 10.0)
    assert wake.due(10.0)
    assert not wake.due(10.1)  # sent: nothing more is wanted
    for t in range(11, 200):
        wake.published("acme", float(t))  # busy: it has its worker
    assert not wake.due(200.0)


def test_a_client_quiet_for_the_idle_grace_wakes_again() -> None:
    wake = Wake(quiet_after_s=300.0, every_s=2.0)
    wake.published("acme", 0.0)
    assert wake.due(0.0)
    wake.published("acme", 299.0)
    assert not wake.due(299.0)
    wake.published("acme", 600.0)  # 301 s after its last task: it may hold no worker
    assert wake.due(600.0)


def test_wakes_are_spaced_and_a_client_that_wakes_meanwhile_is_not_lost() -> None:
    wake = Wake(quiet_after_s=300.0, every_s=2.0)
    wake.published("acme", 100.0)
    assert wake.due(100.0)
    wake.published("globex", 100.5)  # too soon for another run...
    assert not wake.due(100.5)
    assert not wake.due(101.9)
    assert wake.due(102.0)  # ...so it goes when the spacing allows
    assert not wake.due(110.0)


def test_zero_turns_waking_off() -> None:
    wake = Wake(quiet_after_s=300.0, every_s=0.0)
    wake.published("acme", 0.0)
    assert not wake.due(0.0)
    assert not wake.due(1000.0)


def test_a_deregistered_client_that_comes_back_wakes_again() -> None:
    wake = Wake(quiet_after_s=300.0, every_s=0.5)
    wake.published("acme", 0.0)
    assert wake.due(0.0)
    wake.forget("acme")
    wake.published("acme", 10.0)
    assert wake.due(10.0)
