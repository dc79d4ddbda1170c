"""Units as leases on SSH hosts' slots (DESIGN §4): ``SshProvider``, a ``SyncProvider`` over paramiko.

Each host of the inventory belongs to one group and has ``max_units`` slots. ``launch`` places a
request's units on the group's reachable hosts with the most free slots, and starts each unit on
its host through ``hostside`` (detached, its own session and process group, a record kept on the
host). Unit ids derive from the request id and the unit's index, and every launch first lists the
group's hosts: a unit already running anywhere is not started again, so a repeated request never
launches twice, across adapter restarts too. ``list_units`` asks every host in parallel for its
records, which are the ground truth; a host that does not answer is *down*: its units are listed
once as ``FAILED`` (the runner replaces them elsewhere), it is dialled again after
``retry_unreachable`` seconds, and what it still runs when it answers again is listed, and so found
as orphans and reaped (or adopted). ``terminate`` signals each unit's process group, then kills it
after ``terminate_grace``. Credentials travel over the SSH channel only (SFTP, 0600).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import shlex
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from scaler.adapters.errors import CapacityError, ConfigurationError, PartialLaunchError, ProviderError, classify
from scaler.adapters.launch import Credentials, WorkerLaunch
from scaler.adapters.provider import SyncProvider, Unit, UnitState, WorkerGroup
from scaler.adapters.sizing import worker_share
from scaler.adapters.spec import ProviderContext
from scaler.adapters.ssh.channel import RemoteCommandError
from scaler.adapters.ssh.connection import HostConnection
from scaler.adapters.ssh.errors import ERRORS, HostDown
from scaler.adapters.ssh.spec import HostSettings, SshOptions
from scaler.adapters.ssh.tunnel import ReverseTunnel

from scaler.utility.capabilities import parse_capabilities
from scaler.utility.net import parse_tcp
from scaler.utility.security import find_secret, secret_env

log = logging.getLogger(__name__)
T = TypeVar("T")
HOSTSIDE = (Path(__file__).parent / "hostside.py").read_text()
KILL_WAIT = 5.0  # the host-side script's wait after SIGKILL (hostside.terminate)
MAX_CONCURRENT_CALLS = 8  # provider calls in flight at once that each reach every host (the runner's default: 4)


class SshProvider(SyncProvider):
    errors = ERRORS

    def __init__(self, context: ProviderContext, options: SshOptions) -> None:
        self.context, self.options, self.identity = context, options, context.identity
        self.hosts = {name: options.host(name) for name in options.hosts}
        self.links = {name: HostConnection(host, options) for name, host in self.hosts.items()}
        self.records = f"{options.state_dir.rstrip('/')}/units/{self.identity.cluster_id}"
        self.down: dict[str, tuple[float, ProviderError]] = {}  # host -> (dial again after, why)
        self.seen: dict[str, dict[str, Unit]] = {name: {} for name in self.hosts}  # the last answer of each host
        self.pythons: dict[str, str] = {}  # host -> the interpreter its workers run (after any bootstrap)
        self.tunnels: dict[str, ReverseTunnel] = {}
        self.lock = threading.Lock()
        self.placing = {h.group: threading.Lock() for h in self.hosts.values()}  # one launch at a time per group
        # every host at once, for each of the runner's concurrent calls (a slow terminate must not hold up a list)
        workers = min(128, len(self.hosts) * MAX_CONCURRENT_CALLS)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ssh-host")

    # -- the contract --------------------------------------------------------------------------------

    def groups(self, configured: tuple[WorkerGroup, ...]) -> tuple[WorkerGroup, ...]:
        """Checks the inventory against the groups, and sizes the workers of groups whose hosts give
        capabilities ("auto" or totals): the smallest host's share of one slot (``adapters.sizing``)."""
        names = {g.name for g in configured}
        if stray := sorted({h.group for h in self.hosts.values()} - names):
            raise ConfigurationError(f"ssh hosts name group(s) {', '.join(stray)}, which the adapter does not define")
        sized = []
        for group in configured:
            hosts = [h for h in self.hosts.values() if h.group == group.name]
            if not hosts:
                raise ConfigurationError(f"group {group.name!r} has no host in the ssh options' hosts")
            machines = [m for m in self._each(hosts, self._machine).values() if m is not None]
            if machines:
                capabilities = worker_share(machines, group.workers_per_unit, group.capabilities)
                group = msgspec.structs.replace(group, capabilities=capabilities)
            sized.append(group)
        return tuple(sized)

    def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        # The runner may launch for one group on several threads: two placements at once would count
        # the same free slots and put more units on a host than its max_units.
        with self.placing.setdefault(group.name, threading.Lock()):
            return self._launch(group, count, request_id)

    def _launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        hosts = [h for h in self.hosts.values() if h.group == group.name]
        answers = self._each(hosts, self._list_host)
        running = {name: units for name, units in answers.items() if units is not None}
        present = {u.unit_id: u for units in running.values() for u in units if u.state is UnitState.RUNNING}
        wanted = [self.unit_id(group.name, request_id, index) for index in range(count)]
        got = [present[u] for u in wanted if u in present]
        missing = [u for u in wanted if u not in present]
        with self.lock:
            failures = [self.down[h.name][1] for h in hosts if h.name not in running and h.name in self.down]
        slots = {
            name: self.hosts[name].max_units - sum(u.state is UnitState.RUNNING for u in units)
            for name, units in running.items()
        }
        while missing and (plan := spread(missing, slots)):
            for name, unit_ids in plan.items():
                try:
                    got += self._start(self.hosts[name], group, unit_ids, request_id)
                    missing = [u for u in missing if u not in unit_ids]
                    slots[name] -= len(unit_ids)
                except ProviderError as exc:
                    failures.append(exc)
                    slots.pop(name)
        if not missing:
            return got
        cause = self._verdict(group.name, len(missing), failures)
        if got:
            raise PartialLaunchError(got, cause)
        raise cause

    def terminate(self, unit_ids: list[str]) -> None:
        wanted = set(unit_ids)
        by_host: dict[str, list[str]] = {}
        with self.lock:
            for name, units in self.seen.items():
                if mine := sorted(units.keys() & wanted):
                    by_host[name] = mine
        if unknown := sorted(wanted - {u for ids in by_host.values() for u in ids}):
            for name in self.hosts:  # in no host's last answer (a launch in flight): ask every host
                by_host[name] = sorted({*by_host.get(name, []), *unknown})
        results = self._each([self.hosts[n] for n in by_host], lambda h: self._terminate_on(h, by_host[h.name]))
        if survived := [f"{u} on {name}" for name, left in results.items() for u in left or []]:
            raise CapacityError(f"units survived SIGKILL: {', '.join(survived)}")
        known = {name for name, ids in by_host.items() if set(ids) - set(unknown)}
        if failed := sorted(name for name in known if results[name] is None):
            raise HostDown(f"could not reach host(s) {', '.join(failed)} to terminate their units: will retry")

    def list_units(self) -> list[Unit]:
        answers = self._each(list(self.hosts.values()), self._list_host)
        found: list[Unit] = []
        for name, units in answers.items():
            if units is not None:
                found += units
                continue
            with self.lock:
                lost, self.seen[name] = self.seen[name], {}
                why = self.down[name][1] if name in self.down else "unreachable"
            for unit in lost.values():  # listed FAILED once; the host's records are read again when it answers
                details = {**unit.details, "reason": f"host {name} did not answer: {why}"}
                found.append(dataclasses.replace(unit, state=UnitState.FAILED, details=details))
        return found

    # -- one host ------------------------------------------------------------------------------------

    def unit_id(self, group: str, request_id: str, index: int) -> str:
        cluster, adapter = self.identity.cluster_id, self.identity.adapter
        key = "\x00".join((cluster, adapter, group, request_id, str(index))).encode()
        return f"{cluster}.{adapter}.{group}.{hashlib.sha256(key).hexdigest()[:8]}"

    def _list_host(self, host: HostSettings) -> list[Unit]:
        answer = self._hostside(host, "list", {})
        units = {}
        for record in answer:
            state = UnitState.RUNNING if record["state"] == "running" else UnitState.FAILED
            details = {"host": host.name, "pid": str(record.get("pid"))}
            if state is UnitState.FAILED:
                details["reason"] = f"its processes on host {host.name} exited"
            unit = Unit(
                str(record["unit_id"]),
                str(record["group"]),
                state,
                float(record.get("started") or time.time()),
                str(record.get("request_id") or ""),
                details,
            )
            units[unit.unit_id] = unit
        with self.lock:
            self.seen[host.name] = {u.unit_id: u for u in units.values() if u.state is UnitState.RUNNING}
        return list(units.values())

    def _start(self, host: HostSettings, group: WorkerGroup, unit_ids: list[str], request_id: str) -> list[Unit]:
        python = self._python(host)
        units = []
        for unit_id in unit_ids:
            launch = self.context.launches.build(group, unit_id, request_id, self.options.worker_args)
            launch = self._through_tunnel(host, launch)
            environment = {**launch.environment, **self._credentials(host, unit_id, launch.credentials)}
            command = worker_command(launch, python)
            units.append(
                {
                    "unit_id": unit_id,
                    "request_id": request_id,
                    "group": group.name,
                    "command": command,
                    "env": environment,
                }
            )
        self._hostside(host, "launch", {"units": units})
        now = time.time()
        started = [Unit(u, group.name, UnitState.BOOTING, now, request_id, {"host": host.name}) for u in unit_ids]
        with self.lock:
            self.seen[host.name].update((u.unit_id, u) for u in started)
        return started

    def _terminate_on(self, host: HostSettings, unit_ids: list[str]) -> list[str]:
        grace = self.options.terminate_grace
        request = {"unit_ids": unit_ids, "grace": grace}
        answer = self._hostside(host, "terminate", request, timeout=grace + KILL_WAIT + self.options.command_timeout)
        with self.lock:
            for unit_id, outcome in answer.items():
                if outcome != "survived":
                    self.seen[host.name].pop(unit_id, None)
        return [u for u, outcome in answer.items() if outcome == "survived"]

    def _credentials(self, host: HostSettings, unit_id: str, credentials: Credentials) -> dict[str, str]:
        """Places the unit's credentials on the host over SFTP (0600) and returns the environment naming them."""
        link = self.links[host.name]
        files = credentials.remote_files()
        if files:
            directory = link.expand(f"{self.records}/{unit_id}.keys")
            for name, data in files.items():
                self._guard(host, functools.partial(link.put, f"{directory}/{name}", data))
            return credentials.remote_environment(directory)
        if credentials.secret and host.tunnel:  # elsewhere the host's own 127.0.0.1 would be handed the secret
            secret = secret_env(credentials.secret_address, credentials.secret)
            self._guard(host, lambda: link.put(f"{self.records}/{unit_id}.env", json.dumps(secret).encode()))
        return {}

    def _through_tunnel(self, host: HostSettings, launch: WorkerLaunch) -> WorkerLaunch:
        """With ``tunnel``, workers dial the host's end of the forward, with the secret of the scheduler behind it."""
        if not host.tunnel:
            return launch
        link = self.links[host.name]
        tunnel = self._tunnel(host)
        port = self._guard(host, lambda: tunnel.ensure(link.transport()))
        address = f"{launch.scheduler.partition('://')[0]}://127.0.0.1:{port}"
        credentials = launch.credentials
        if credentials.curve_keys is None:
            secret = credentials.secret or find_secret(launch.scheduler)
            credentials = Credentials(secret, address) if secret else Credentials()
        return dataclasses.replace(launch, scheduler=address, credentials=credentials)

    def _python(self, host: HostSettings) -> str:
        if host.name in self.pythons:
            return self.pythons[host.name]
        python = host.python
        if host.bootstrap:
            from scaler.adapters.ssh import bootstrap

            bundle = bootstrap.bundle(self.context.state_dir / "wheels", self.options.offline_bootstrap)
            python = self._guard(host, lambda: bootstrap.ensure(self.links[host.name], host.venv, host.python, bundle))
        self.pythons[host.name] = python
        return python

    def _machine(self, host: HostSettings) -> dict[str, float] | None:
        if not host.capabilities:
            return None
        if host.capabilities != "auto":
            total = parse_capabilities(host.capabilities).as_dict()
        else:
            facts = self._hostside(host, "facts", {})
            total = {"cpu": float(facts["cpu"]), "memory": float(facts["memory"]), "gpu": float(facts["gpu"])}
        return {name: value / host.max_units for name, value in total.items()}

    def _hostside(self, host: HostSettings, verb: str, request: dict[str, Any], timeout: float = 0.0) -> Any:
        """The host-side script's answer to ``verb``; any failure marks the host down, as our class."""
        link = self.links[host.name]
        if host.tunnel:  # given back on every contact: a restarted adapter's units dial it too
            self._guard(host, lambda: self._tunnel(host).ensure(link.transport()))
        body = json.dumps({**request, "records": self.records, "host": host.name}).encode()
        command = f"{shlex.quote(host.python)} -c {shlex.quote(HOSTSIDE)} {verb}"

        def call() -> Any:
            done = link.run(command, body, timeout)
            if done.rc != 0:
                raise RemoteCommandError(host.name, f"{host.python} (the host-side script, {verb})", done)
            try:
                return json.loads(done.stdout)
            except ValueError:
                raise RemoteCommandError(host.name, f"the host-side script ({verb}) answered no JSON", done) from None

        return self._guard(host, call)

    def _tunnel(self, host: HostSettings) -> ReverseTunnel:
        """The host's forward to the address its workers dial (made once, at first contact)."""
        with self.lock:
            tunnel = self.tunnels.get(host.name)
            if tunnel is None:
                target_host, target_port = parse_tcp(self.context.launches.scheduler)
                port = host.tunnel_port or target_port
                tunnel = self.tunnels[host.name] = ReverseTunnel(host.name, port, (target_host, target_port))
            return tunnel

    def _guard(self, host: HostSettings, call: Callable[[], T]) -> T:
        """``call`` on the host's session. A failure marks the host down until ``retry_unreachable`` has
        passed, as our class (``HostDown`` for an unreachable host or a broken session)."""
        try:
            result = call()
        except ProviderError as exc:
            self._mark_down(host, exc)
            raise
        except Exception as exc:
            ours = classify(self.errors, exc)
            where = f"host {host.name} ({host.address}:{host.port})"
            error = (HostDown if ours is CapacityError else ours)(f"{where}: {type(exc).__name__}: {exc}")
            self._mark_down(host, error)
            raise error from exc
        with self.lock:
            self.down.pop(host.name, None)
        return result

    def _mark_down(self, host: HostSettings, error: ProviderError) -> None:
        with self.lock:
            self.down[host.name] = (time.monotonic() + self.options.retry_unreachable, error)

    def _each(self, hosts: list[HostSettings], call: Callable[[HostSettings], T]) -> dict[str, T | None]:
        """``call`` on every host at once, skipping hosts down until their retry time; a host whose call
        failed, or that was skipped, answers None (the failure is logged once, when it happens)."""
        now = time.monotonic()
        with self.lock:
            skipped = {name for name, (until, _) in self.down.items() if until > now}
        futures = {h.name: self.pool.submit(call, h) for h in hosts if h.name not in skipped}
        answers: dict[str, T | None] = {h.name: None for h in hosts}
        for name, future in futures.items():
            try:
                answers[name] = future.result()
            except ProviderError as exc:  # every failure on a host is one (``_guard``)
                log.warning("ssh: %s", exc)
        return answers

    def _verdict(self, group: str, missing: int, failures: list[ProviderError]) -> ProviderError:
        auth = [f for f in failures if not f.retryable]
        if auth:
            return auth[0]
        reasons = "; ".join(dict.fromkeys(str(f) for f in failures)) or "every slot is taken"
        return CapacityError(f"group {group!r}: no reachable host has a free slot for {missing} unit(s): {reasons}")


def worker_command(launch: WorkerLaunch, python: str) -> str:
    """The shell line that runs a unit's workers (one process group: ``terminate`` signals it whole)."""
    lines = [shlex.join(launch.argv(index, python)) for index in range(launch.workers)]
    if len(lines) == 1:
        return f"exec {lines[0]}"
    return " & ".join(lines) + " & wait"


def spread(unit_ids: list[str], slots: dict[str, int]) -> dict[str, list[str]]:
    """Each unit onto the host with the most free slots at that moment (ties: inventory order)."""
    free = dict(slots)
    plan: dict[str, list[str]] = {}
    for unit_id in unit_ids:
        name = max(free, key=lambda n: free[n], default="")
        if not name or free[name] <= 0:
            break
        plan.setdefault(name, []).append(unit_id)
        free[name] -= 1
    return plan


def make_provider(context: ProviderContext, options: SshOptions) -> SshProvider:
    return SshProvider(context, options)
