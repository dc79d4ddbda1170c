"""An adapter that was killed and restarted replaces its old session at once (found by benchmarks/chaos.py).

A SIGKILLed adapter says no Goodbye, so the scheduler only drops its session after ``peer_timeout``.
Until then the restarted adapter (a new connection, the same name) and the dead one were both
counted: two rows for one adapter in the status, and the dead adapter's units (gone with it) as
pending supply in every scaling round.
"""

from __future__ import annotations

import time
from typing import Any

from scaler.protocol import messages as m
from scaler.scaling.model import ScalingConfig
from scaler.scheduler.adapters import AdapterSessions
from scaler.scheduler.config import SchedulerConfig
from scaler.scheduler.engine import Engine
from scaler.scheduler.outbox import Outbox

GROUP = m.GroupSpec("cpu", "cpu=1", 1, 2, 2)


def state(*units: str) -> m.AdapterState:
    return m.AdapterState("chaos", [GROUP], [m.UnitReport(u, "cpu", "running", time.time()) for u in units])


def launched(outbox: Outbox, identity: bytes) -> int:
    sent: list[Any] = outbox._pending.get(identity, ([], []))[0]
    return sum(sum(msg.launch.values()) for msg in sent if isinstance(msg, m.ScaleCommand))


def test_a_restarted_adapter_replaces_the_dead_ones_session() -> None:
    outbox = Outbox(None)  # type: ignore[arg-type]  # nothing is flushed: commands stay in _pending
    sessions = AdapterSessions(Engine(SchedulerConfig(), outbox), ScalingConfig(interval=0.01))
    sessions.report(b"dead", "chaos", state("chaos-1.cpu.a"))  # its last report: one unit left
    sessions.report(b"new", "chaos", state())  # the restarted adapter: its units died with the old one
    sessions.tick(time.time())
    assert [row["adapter"] for row in sessions.status()] == ["chaos"], "one session per adapter name"
    assert launched(outbox, b"new") == GROUP.min_units
    assert launched(outbox, b"dead") == 0
