"""Units as worker processes on this host (DESIGN §4, the local provider).

Each unit is ``workers_per_unit`` ``scaler_worker`` processes, rendered from the unit's
``WorkerLaunch``: they carry the unit id and the unit's tags (cluster, adapter, group, unit, request
id) as ``--unit-id`` and ``--tag`` arguments. The process table is the ground truth: ``list_units``
reads the tags back from running processes' command lines and keeps the units whose cluster and
adapter tags equal this adapter's, so units left by an earlier adapter (even one killed with SIGKILL)
are found, with their request ids, and another cluster's never are. Workers also die with the
adapter that started them (parent-death signal). Request ids already launched are remembered in a
state file, so a repeated request never launches twice, across restarts too.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import psutil
from scaler.adapters.errors import ConfigurationError, ErrorTable
from scaler.adapters.identity import TAG_GROUP, TAG_REQUEST, TAG_UNIT, tags_from_arguments
from scaler.adapters.local.render import start_worker
from scaler.adapters.local.spec import LocalOptions
from scaler.adapters.provider import Unit, UnitState, WorkerGroup
from scaler.adapters.spec import ProviderContext


class LocalProvider:
    # A missing interpreter or working directory will not appear by retrying: the group stops.
    errors: ErrorTable = (((FileNotFoundError, NotADirectoryError), ConfigurationError),)

    def __init__(self, context: ProviderContext, worker_args: tuple[str, ...] = (), python: str = "") -> None:
        self.context = context
        self.identity = context.identity
        self.python = python
        self.state_file = context.state_dir / f"local-{self.identity.cluster_id}.{self.identity.adapter}.json"
        self.worker_args = worker_args
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        context.state_dir.mkdir(parents=True, exist_ok=True)

    async def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        return await asyncio.to_thread(self._launch, group, count, request_id)

    async def terminate(self, unit_ids: list[str]) -> None:
        await asyncio.to_thread(self._terminate, unit_ids)

    async def list_units(self) -> list[Unit]:
        return await asyncio.to_thread(self._list)

    def _load(self) -> dict[str, list[str]]:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): [str(u) for u in v] for k, v in data.get("requests", {}).items()}

    def _save(self, requests: dict[str, list[str]]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"cluster": self.identity.cluster_id, "requests": dict(list(requests.items())[-1000:])})
        )
        tmp.replace(self.state_file)

    def _launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        requests = self._load()
        if request_id in requests:
            alive = {u.unit_id: u for u in self._list()}
            return [alive[u] for u in requests[request_id] if u in alive]
        units = []
        for _ in range(count):
            unit_id = self.identity.new_unit_id(group.name)
            self.start_unit(group, unit_id, request_id)
            units.append(Unit(unit_id, group.name, UnitState.BOOTING, time.time(), request_id))
        requests[request_id] = [u.unit_id for u in units]
        self._save(requests)
        return units

    def start_unit(self, group: WorkerGroup, unit_id: str, request_id: str) -> None:
        launch = self.context.launches.build(group, unit_id, request_id, self.worker_args)
        for index in range(launch.workers):
            process = start_worker(launch, index, self.python, new_session=True)
            self.children[process.pid] = process

    def _processes(self) -> dict[str, tuple[dict[str, str], list[psutil.Process]]]:
        """This adapter's live worker processes by unit id, with the unit's tags."""
        for pid, child in list(self.children.items()):
            if child.poll() is not None:
                del self.children[pid]
        matched: list[tuple[str, dict[str, str], psutil.Process]] = []
        for process in psutil.process_iter(["cmdline", "status", "ppid"]):
            cmdline = process.info["cmdline"] or []
            if process.info["status"] == psutil.STATUS_ZOMBIE or "--tag" not in cmdline:
                continue
            tags = tags_from_arguments(cmdline)
            unit_id = tags.get(TAG_UNIT, "")
            if unit_id and self.identity.owns(tags):
                matched.append((unit_id, tags, process))
        # A worker's task processes are forks of it and show its command line: they are not workers
        # of the unit (the worker stops them itself), unless their worker is gone.
        workers = {process.pid for _, _, process in matched}
        found: dict[str, tuple[dict[str, str], list[psutil.Process]]] = {}
        for unit_id, tags, process in matched:
            if process.info["ppid"] not in workers:
                found.setdefault(unit_id, (tags, []))[1].append(process)
        return found

    def _list(self) -> list[Unit]:
        units = []
        for unit_id, (tags, processes) in self._processes().items():
            try:
                created = min(p.create_time() for p in processes)
            except psutil.Error:
                continue
            details = {"pids": str([p.pid for p in processes])}
            units.append(
                Unit(unit_id, tags.get(TAG_GROUP, ""), UnitState.RUNNING, created, tags.get(TAG_REQUEST, ""), details)
            )
        return units

    def _terminate(self, unit_ids: list[str]) -> None:
        found = self._processes()
        victims = [p for unit_id in unit_ids for p in found.get(unit_id, ({}, []))[1]]
        for process in victims:
            try:
                process.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(victims, timeout=3)
        for process in alive:
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=2)
        for process in victims:
            child = self.children.pop(process.pid, None)
            if child is not None:
                child.poll()


def make_provider(context: ProviderContext, options: LocalOptions) -> LocalProvider:
    return LocalProvider(context, options.worker_args)
