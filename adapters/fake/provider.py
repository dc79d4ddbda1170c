"""Local worker processes behind an injectable boot latency and injectable launch failures.

``launch`` answers after ``launch_seconds`` (a slow backend API); each unit's processes start
``boot_seconds`` later (the unit is ``booting`` meanwhile and listed as such). ``fail_launches``
makes the next N launches of the named groups raise the given error class (``capacity``,
``quota``, ``throttled``, ``auth``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

from scaler.adapters import errors
from scaler.adapters.local.provider import LocalProvider
from scaler.adapters.provider import Unit, UnitState, WorkerGroup

ERRORS: dict[str, type[errors.ProviderError]] = {
    "capacity": errors.CapacityError,
    "quota": errors.QuotaError,
    "throttled": errors.ThrottledError,
    "auth": errors.AuthError,
}


class FakeProvider:
    def __init__(
        self,
        local: LocalProvider,
        boot_seconds: float = 0.0,
        fail: dict[str, tuple[str, int]] | None = None,
        launch_seconds: float = 0.0,
    ):
        self.local = local
        self.launch_seconds = launch_seconds
        self.boot_seconds = boot_seconds
        self.fail = dict(fail or {})
        self.booting: dict[str, Unit] = {}
        self.requests: dict[str, list[Unit]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.launch_calls = 0

    async def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        self.launch_calls += 1
        await asyncio.sleep(self.launch_seconds)
        if request_id in self.requests:
            return self.requests[request_id]
        kind, left = self.fail.get(group.name, ("", 0))
        if left > 0:
            self.fail[group.name] = (kind, left - 1)
            raise ERRORS[kind](f"injected {kind} failure for group {group.name}")
        units = []
        for _ in range(count):
            unit_id = f"{self.local.tag}.{group.name}.{secrets.token_hex(4)}"
            unit = Unit(unit_id, group.name, UnitState.BOOTING, time.time(), request_id)
            self.booting[unit_id] = unit
            units.append(unit)
            task = asyncio.create_task(self._boot(group, unit))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        self.requests[request_id] = units
        return units

    async def _boot(self, group: WorkerGroup, unit: Unit) -> None:
        await asyncio.sleep(self.boot_seconds)
        if unit.unit_id in self.booting:
            await asyncio.to_thread(self.local.start_unit, group, unit.unit_id)
            self.booting.pop(unit.unit_id, None)

    async def terminate(self, unit_ids: list[str]) -> None:
        for unit_id in unit_ids:
            self.booting.pop(unit_id, None)
        await self.local.terminate(unit_ids)

    async def list_units(self) -> list[Unit]:
        booting = list(self.booting.values())  # before the await: a unit may finish booting meanwhile
        running = await self.local.list_units()
        seen = {r.unit_id for r in running}
        return [*running, *[u for u in booting if u.unit_id not in seen]]


def make_provider(scheduler: str, cluster_tag: str, state_dir: Path, options: dict[str, object]) -> FakeProvider:
    local = LocalProvider(scheduler, cluster_tag, state_dir, tuple(str(a) for a in options.get("worker_args", ())))  # type: ignore[attr-defined]
    fail = {str(g): (str(v[0]), int(v[1])) for g, v in dict(options.get("fail", {})).items()}  # type: ignore[call-overload]
    return FakeProvider(local, float(options.get("boot_seconds", 0.0)), fail, float(options.get("launch_seconds", 0.0)))  # type: ignore[arg-type]
