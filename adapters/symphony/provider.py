"""Units as Symphony sessions (DESIGN §4): ``SymphonyProvider``, a ``SyncProvider`` over ibm-cloud-sdk-core.

One unit is one session of the ``ScalerWorker`` application holding one long-running task, whose
service (``scaler.adapters.symphony.service``) runs the unit's workers from the task input, the
unit's ``WorkerLaunch`` as JSON. The five identity tags live in the session: its tag is
``CLUSTER.ADAPTER.GROUP`` and its name ``REQUEST.INDEX`` (the three names hold no dot), and the unit id
is derived from all of them, so ``list_units`` reads every unit back from Symphony and compares the
cluster and adapter as whole values. ``launch`` first looks for the request's sessions by name and
creates only the missing ones (the SDK never retries a create), then submits the task of any of them
that has none yet. ``terminate`` closes the sessions, which ends their tasks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any

import msgspec
from scaler.adapters.errors import (
    ConfigurationError,
    ErrorTable,
    PartialLaunchError,
    ProviderError,
    classify,
)
from scaler.adapters.identity import NAME_PATTERN, NAME_RULE, TAG_ADAPTER, TAG_CLUSTER, TAG_GROUP, TAG_REQUEST, TAG_UNIT
from scaler.adapters.launch import WorkerLaunch
from scaler.adapters.provider import SyncProvider, Unit, UnitState, WorkerGroup
from scaler.adapters.sizing import worker_share
from scaler.adapters.spec import ProviderContext
from scaler.adapters.symphony.api import Session, Symrest
from scaler.adapters.symphony.auth import make_authenticator
from scaler.adapters.symphony.errors import ERRORS, TaskRefused
from scaler.adapters.symphony.spec import SymphonyGroup, SymphonyOptions

from scaler.utility.security import secret_env

MIB = 1024 * 1024
ENDED = ("closed", "aborted", "suspended-closed")
KEYS_PLACEHOLDER = "{keys}"  # the service puts the key files' directory here


def digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:8]


def task_input(launch: WorkerLaunch, python: str, keys_dir: str = "") -> bytes:
    """What the service needs to run a unit's workers: their argv, environment and credentials (never on argv).
    CURVE keys travel as files in the input, or, with ``keys_dir``, stay where the compute hosts have them."""
    environment = dict(launch.environment)
    credentials = launch.credentials
    if credentials.secret:  # a loopback scheduler's: only usable by compute hosts that are this host
        environment.update(secret_env(credentials.secret_address, credentials.secret))
    files = {} if keys_dir else {name: data.decode() for name, data in credentials.remote_files().items()}
    description = {
        "unit_id": launch.unit_id,
        "workers": [launch.argv(index, python) for index in range(launch.workers)],
        "environment": {**environment, **(credentials.remote_environment(keys_dir) if keys_dir else {})},
        "files": files,
        "file_environment": {} if keys_dir else credentials.remote_environment(KEYS_PLACEHOLDER),
    }
    return json.dumps(description).encode()


class SymphonyProvider(SyncProvider):
    errors: ErrorTable = ERRORS

    def __init__(self, context: ProviderContext, options: SymphonyOptions, api: Symrest | None = None) -> None:
        self.context, self.options, self.identity = context, options, context.identity
        authenticator = make_authenticator(options)
        self.api = api or Symrest(options.url, authenticator, options.ca_file, options.request_timeout)

    # -- the contract --------------------------------------------------------------------------------

    def groups(self, configured: tuple[WorkerGroup, ...]) -> tuple[WorkerGroup, ...]:
        """Each group with a ``resource_group`` sized to its hosts' ``ncpus`` and ``nram`` (``worker_share``);
        settings for a group the adapter does not define (a misspelt name) are refused."""
        if stray := sorted(set(self.options.groups) - {g.name for g in configured}):
            raise ConfigurationError(f"symphony options.groups name {', '.join(stray)}: no such [[adapter.group]]")
        sized = []
        for group in configured:
            name = self.settings(group.name).resource_group
            if name:
                hosts = self.api.hosts(name)
                if not hosts:
                    raise ConfigurationError(f"group {group.name!r}: resource group {name!r} has no hosts")
                machines = [
                    {"cpu": float(h.get("ncpus") or 0), "memory": float(h.get("nram") or 0) * MIB} for h in hosts
                ]
                capabilities = worker_share(machines, group.workers_per_unit, group.capabilities)
                group = msgspec.structs.replace(group, capabilities=capabilities)
            sized.append(group)
        return tuple(sized)

    def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        if not NAME_PATTERN.fullmatch(group.name):  # the config check refuses it; a group made in code may not
            raise ConfigurationError(f"group {group.name!r} cannot go into a session tag: {NAME_RULE}")
        found = {s.name: s for s, tags in self._mine() if tags[TAG_GROUP] == group.name}
        units: list[Unit] = []
        for index in range(count):
            name = f"{request_id}.{index}"
            try:
                units.append(self._ensure(group, request_id, name, found.get(name)))
            except Exception as exc:
                if not units:
                    raise
                cause = exc if isinstance(exc, ProviderError) else classify(self.errors, exc)(str(exc))
                raise PartialLaunchError(units, cause) from exc
        return units

    def terminate(self, unit_ids: list[str]) -> None:
        """Closes every wanted session, even when closing one fails; then raises the first failure."""
        wanted = set(unit_ids)
        failures: list[Exception] = []
        for session, tags in self._mine():
            if tags[TAG_UNIT] in wanted:
                try:
                    self.api.close(self.options.application, session.session_id)
                except Exception as exc:
                    failures.append(exc)
        if failures:
            raise failures[0]

    def list_units(self) -> list[Unit]:
        return [self._unit(session, tags) for session, tags in self._mine()]

    # -- sessions ------------------------------------------------------------------------------------

    def settings(self, group: str) -> SymphonyGroup:
        return self.options.groups.get(group, SymphonyGroup())

    def unit_id(self, group: str, request_id: str, index: str) -> str:
        cluster, adapter = self.identity.cluster_id, self.identity.adapter
        return f"{cluster}.{adapter}.{group}.{digest(cluster, adapter, group, request_id, index)}"

    def tags_of(self, session: Session) -> dict[str, str] | None:
        """The five tags a session carries in its tag and name, or None if it is not a unit's."""
        cluster, adapter, group = [*session.tag.split("."), "", "", ""][:3]
        request_id, dot, index = session.name.rpartition(".")
        if session.tag.count(".") != 2 or not dot or not index.isdigit() or not group:
            return None
        unit_id = self.unit_id(group, request_id, index) if (cluster, adapter) == self._owner() else ""
        return {
            TAG_CLUSTER: cluster,
            TAG_ADAPTER: adapter,
            TAG_GROUP: group,
            TAG_UNIT: unit_id,
            TAG_REQUEST: request_id,
        }

    def _owner(self) -> tuple[str, str]:
        return self.identity.cluster_id, self.identity.adapter

    def _mine(self) -> list[tuple[Session, dict[str, str]]]:
        """This adapter's open sessions with their tags (whole values compared)."""
        found = []
        for session in self.api.sessions(self.options.application):
            tags = self.tags_of(session)
            if tags is not None and self.identity.owns(tags) and session.state not in ENDED:
                found.append((session, tags))
        return found

    def _unit(self, session: Session, tags: dict[str, str]) -> Unit:
        if session.running:
            state = UnitState.RUNNING
        elif session.ended and not session.pending:
            state = UnitState.FAILED  # its task (the workers) ended: the runner replaces the unit
        else:
            state = UnitState.BOOTING  # its task waits for a slot, or is not submitted yet
        details = {"session_id": session.session_id, "session": session.name, "symphony_state": session.state}
        created = session.created or time.time()
        return Unit(tags[TAG_UNIT], tags[TAG_GROUP], state, created, tags[TAG_REQUEST], details)

    def _ensure(self, group: WorkerGroup, request_id: str, name: str, session: Session | None) -> Unit:
        """The unit of session ``name``: created and given its task unless Symphony already has them."""
        index = name.rpartition(".")[2]
        unit_id = self.unit_id(group.name, request_id, index)
        tag = f"{self.identity.cluster_id}.{self.identity.adapter}.{group.name}"
        if session is None:
            settings = self.settings(group.name)
            body: dict[str, Any] = {
                "sessionName": name,
                "sessionTag": tag,
                "serviceName": self.options.service,
                "sessionPriority": settings.priority,
            }
            if settings.session_type:
                body["sessionType"] = settings.session_type
            session_id = self.api.create_session(self.options.application, body)
            if not session_id:
                raise ConfigurationError(f"symphony: creating session {name!r} answered no sessionId")
            session = Session(session_id, name, tag, "open", time.time(), 0, 0, 0)
        if not (session.pending or session.running or session.ended):  # new, or created by a call that failed
            self._submit(group, unit_id, request_id, session)
            session = dataclasses.replace(session, pending=1)  # as it is right after its task was submitted
        tags = {TAG_CLUSTER: self.identity.cluster_id, TAG_ADAPTER: self.identity.adapter, TAG_GROUP: group.name}
        return self._unit(session, {**tags, TAG_UNIT: unit_id, TAG_REQUEST: request_id})

    def _submit(self, group: WorkerGroup, unit_id: str, request_id: str, session: Session) -> None:
        launch = self.context.launches.build(group, unit_id, request_id, self.options.worker_args)
        rows = self.api.submit(
            self.options.application,
            session.session_id,
            task_input(launch, self.options.python, self.options.curve_keys_dir),
        )
        refused = [str(row.get("errorMessage")) for row in rows if row.get("errorMessage")]
        if refused or not rows:
            self.api.close(self.options.application, session.session_id)  # no empty session is left behind
            reason = refused[0] if refused else "the answer listed no task"
            raise TaskRefused(f"session {session.name!r} of group {group.name!r} refused its task: {reason}")


def make_provider(context: ProviderContext, options: SymphonyOptions) -> SymphonyProvider:
    return SymphonyProvider(context, options)
