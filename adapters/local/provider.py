"""Units as worker processes on this host (DESIGN §4, the local provider).

Each unit is ``workers_per_unit`` ``scaler_worker`` processes started with ``--unit-id
<cluster tag>.<group>.<random>``. The process table is the ground truth: ``list_units`` reads the
unit ids back from running processes' command lines, so units left by an earlier adapter (even
one killed with SIGKILL) are found and reaped. Workers also die with the adapter that started
them (parent-death signal). Request ids already launched are remembered in a state file, so a
repeated request never launches twice, across restarts too.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psutil
from scaler.adapters.provider import Unit, UnitState, WorkerGroup


class LocalProvider:
    def __init__(
        self, scheduler: str, cluster_tag: str, state_dir: Path, worker_args: tuple[str, ...] = (), python: str = ""
    ) -> None:
        self.python = python or sys.executable
        self.scheduler = scheduler
        self.tag = cluster_tag
        self.state_file = state_dir / f"local-{cluster_tag}.json"
        self.worker_args = worker_args
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        state_dir.mkdir(parents=True, exist_ok=True)

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
        tmp.write_text(json.dumps({"tag": self.tag, "requests": dict(list(requests.items())[-1000:])}))
        tmp.replace(self.state_file)

    def _launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        requests = self._load()
        if request_id in requests:
            alive = {u.unit_id: u for u in self._list()}
            return [alive[u] for u in requests[request_id] if u in alive]
        units = []
        for _ in range(count):
            unit_id = f"{self.tag}.{group.name}.{secrets.token_hex(4)}"
            self.start_unit(group, unit_id)
            units.append(Unit(unit_id, group.name, UnitState.BOOTING, time.time(), request_id))
        requests[request_id] = [u.unit_id for u in units]
        self._save(requests)
        return units

    def start_unit(self, group: WorkerGroup, unit_id: str) -> None:
        env = dict(os.environ, SCALER_PARENT_PID=str(os.getpid()))
        for index in range(group.workers_per_unit):
            argv = [
                self.python,
                "-m",
                "scaler.worker.main",
                self.scheduler,
                "--capabilities",
                group.capabilities,
                "--unit-id",
                unit_id,
                "--name",
                f"{unit_id}/{index}",
                *self.worker_args,
            ]
            process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
            self.children[process.pid] = process

    def _processes(self) -> dict[str, list[psutil.Process]]:
        for pid, child in list(self.children.items()):
            if child.poll() is not None:
                del self.children[pid]
        found: dict[str, list[psutil.Process]] = {}
        prefix = f"{self.tag}."
        for process in psutil.process_iter(["cmdline", "status"]):
            cmdline = process.info["cmdline"] or []
            if process.info["status"] == psutil.STATUS_ZOMBIE or "--unit-id" not in cmdline:
                continue
            position = cmdline.index("--unit-id") + 1
            if position < len(cmdline) and cmdline[position].startswith(prefix):
                found.setdefault(cmdline[position], []).append(process)
        return found

    def _list(self) -> list[Unit]:
        units = []
        for unit_id, processes in self._processes().items():
            created = min(p.create_time() for p in processes)
            group = unit_id[len(self.tag) + 1 :].rsplit(".", 1)[0]
            units.append(
                Unit(unit_id, group, UnitState.RUNNING, created, details={"pids": str([p.pid for p in processes])})
            )
        return units

    def _terminate(self, unit_ids: list[str]) -> None:
        found = self._processes()
        victims = [p for unit_id in unit_ids for p in found.get(unit_id, [])]
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


def make_provider(scheduler: str, cluster_tag: str, state_dir: Path, options: dict[str, object]) -> LocalProvider:
    worker_args = tuple(str(a) for a in options.get("worker_args", ()))  # type: ignore[attr-defined]
    return LocalProvider(scheduler, cluster_tag, state_dir, worker_args)
