"""A complete third-party provider: workers as low-priority processes on this host (README, docs/adapters.md)."""

from __future__ import annotations

import contextlib
import time

import psutil
from scaler.adapters.errors import AuthError, ConfigurationError, ErrorTable
from scaler.adapters.identity import TAG_GROUP, TAG_REQUEST, TAG_UNIT, tags_from_arguments
from scaler.adapters.local.render import start_worker
from scaler.adapters.provider import SyncProvider, Unit, UnitState, WorkerGroup
from scaler.adapters.spec import Options, ProviderContext, ProviderSpec


class NiceOptions(Options, frozen=True, forbid_unknown_fields=True, kw_only=True):
    niceness: int = 10  # each worker's nice value: higher runs at lower priority


class NiceProvider(SyncProvider):
    errors: ErrorTable = ((FileNotFoundError, ConfigurationError), (psutil.AccessDenied, AuthError))

    def __init__(self, context: ProviderContext, options: NiceOptions) -> None:
        self.context, self.options = context, options

    def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        if launched := [unit for unit in self.list_units() if unit.request_id == request_id]:
            return launched  # this request was carried out already: never launch twice
        units = []
        for _ in range(count):
            unit_id = self.context.identity.new_unit_id(group.name)
            launch = self.context.launches.build(group, unit_id, request_id)
            for index in range(launch.workers):
                psutil.Process(start_worker(launch, index, new_session=True).pid).nice(self.options.niceness)
            units.append(Unit(unit_id, group.name, UnitState.BOOTING, time.time(), request_id))
        return units

    def terminate(self, unit_ids: list[str]) -> None:
        victims = [process for process, tags in self._workers() if tags[TAG_UNIT] in unit_ids]
        for process in victims:
            with contextlib.suppress(psutil.NoSuchProcess):  # ended meanwhile: terminating twice is harmless
                process.terminate()
        psutil.wait_procs(victims, timeout=5)

    def list_units(self) -> list[Unit]:
        units = {t[TAG_UNIT]: (p.info["create_time"], t) for p, t in self._workers()}
        return [Unit(u, t[TAG_GROUP], UnitState.RUNNING, at, t[TAG_REQUEST]) for u, (at, t) in units.items()]

    def _workers(self) -> list[tuple[psutil.Process, dict[str, str]]]:
        processes = psutil.process_iter(["cmdline", "ppid", "create_time"])
        found = [(p, tags_from_arguments(p.info["cmdline"] or [])) for p in processes]
        mine = [(p, tags) for p, tags in found if TAG_UNIT in tags and self.context.identity.owns(tags)]
        pids = {p.pid for p, _ in mine}  # a worker's forked task processes show its command line: skip them
        return [(p, tags) for p, tags in mine if p.info["ppid"] not in pids]


SPEC = ProviderSpec("nice", NiceOptions, "nice_provider:NiceProvider")
