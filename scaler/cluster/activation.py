"""How far a starting cluster is: workers joined against each group's minimum, read from one status reply.

``Cluster`` enters its block only once every group has ``min_units x workers_per_unit`` workers
connected. A worker counts for the group of the unit it says it belongs to (the scheduler's unit
rows name each unit's adapter and group); the slowest unit still on its way is what the progress
line and the activation error name, so a ten-minute start says what it is waiting for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from scaler.protocol import messages as m


@dataclass(frozen=True)
class GroupProgress:
    adapter: str
    group: str
    joined: int
    wanted: int
    failing: str = ""  # why the adapter cannot launch for it now, if it cannot

    @property
    def ready(self) -> bool:
        return self.joined >= self.wanted

    def __str__(self) -> str:
        failing = f" (failing: {self.failing})" if self.failing else ""
        return f"{self.adapter}/{self.group} {self.joined}/{self.wanted} workers{failing}"


@dataclass(frozen=True)
class Progress:
    groups: tuple[GroupProgress, ...]
    slowest: str  # the longest-waiting unit not yet running, with its state and cause ("" when none)

    @property
    def ready(self) -> bool:
        return all(g.ready for g in self.groups)

    def line(self) -> str:
        text = ", ".join(map(str, self.groups)) or "no worker groups"
        return f"{text}; waiting on {self.slowest}" if self.slowest and not self.ready else text


def progress(reply: m.StatusReply, wanted: dict[tuple[str, str], int], now: float | None = None) -> Progress:
    """``wanted`` maps (adapter, group) to the workers it needs before the block may start."""
    now = time.time() if now is None else now
    group_of = {str(row["unit"]): (str(row["adapter"]), str(row["group"])) for row in reply.units}
    joined: dict[tuple[str, str], int] = {}
    for worker in reply.workers:
        key = group_of.get(str(worker.get("unit", "")))
        if key is not None:
            joined[key] = joined.get(key, 0) + 1
    failing = {(str(r["adapter"]), str(r["group"])): str(r.get("failing", "")) for r in reply.adapters}
    groups = tuple(
        GroupProgress(a, g, joined.get((a, g), 0), n, failing.get((a, g), "")) for (a, g), n in wanted.items()
    )
    waiting = [row for row in reply.units if row["state"] in ("requested", "booting")]
    slowest = ""
    if waiting:
        row = min(waiting, key=lambda r: float(r["since"]))
        seconds = max(0.0, now - float(row["since"]))
        slowest = f"unit {row['unit']} {row['state']} for {seconds:.0f}s ({row['cause']})"
    return Progress(groups, slowest)
