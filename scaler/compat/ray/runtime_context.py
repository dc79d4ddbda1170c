"""``ray.get_runtime_context()``: what code can learn about where it runs.

Ids of the current task and actor, this process (worker id) and node, the resources the task or
actor asked for, and whether a cancel reached the running call. A *node* is a Scaler worker agent,
as in ``ray.nodes()``: its id is the agent's name, which the agent hands its task processes; the
driver, on no agent, has its host's name. Inside one of several calls an actor runs at once (a
threaded or async actor), the task id is that call's: each call has its own context
(``scaler.worker.runtime``).

Also ``ray.runtime_context`` itself. Any other public name, of the module or of a ``RuntimeContext``,
raises ``NotImplementedError`` naming it.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from scaler.compat.ray.options import ray_name
from scaler.compat.ray.unsupported import UnsupportedAPIError, module_getattr
from scaler.utility.capabilities import DEDICATED_PREFIX, GROUP_PREFIX, parse_capabilities
from scaler.worker import dedicated, runtime

__getattr__ = module_getattr("ray.runtime_context")
NODE_ENV = "SCALER_WORKER_NAME"  # set by the worker agent for its task processes
_worker_ids: dict[int, str] = {}  # by pid: a forked process gets an id of its own


class RuntimeContext:
    def get_task_id(self) -> str | None:
        current = runtime.current()
        return current.task_id if current is not None else None

    def get_actor_id(self) -> str | None:
        return dedicated.current_host_id()

    def get_job_id(self) -> str:
        return "01000000"

    def get_node_id(self) -> str:
        """The node (worker agent) running this code, named as ``ray.nodes()`` names it."""
        return os.environ.get(NODE_ENV) or socket.gethostname()

    def get_worker_id(self) -> str:
        """This process's id (a driver, a task process or an actor's), hex as Ray's."""
        pid = os.getpid()
        found = _worker_ids.get(pid)
        if found is None:
            found = _worker_ids[pid] = os.urandom(28).hex()
        return found

    def get_assigned_resources(self) -> dict[str, float]:
        """What the current task asked for (an actor's calls: what the actor did), with Ray's names."""
        current = runtime.current()
        if current is None:
            raise RuntimeError("get_assigned_resources() is only available inside a task or an actor")
        out: dict[str, float] = {}
        for name, amount in parse_capabilities(current.caps_key).quantities:
            if amount and not name.startswith((DEDICATED_PREFIX, GROUP_PREFIX)):
                out[ray_name(name)] = amount
        return out

    def is_canceled(self) -> bool:
        """Whether ``ray.cancel`` reached the running call (a sync actor's call runs on)."""
        current = runtime.current()
        if current is None:
            raise RuntimeError("is_canceled() is only available inside a task or an actor, not in the driver")
        concurrency = dedicated.current_concurrency()
        if concurrency is not None and concurrency.is_async:
            raise RuntimeError("is_canceled() is not supported in an async actor: its calls see CancelledError")
        return current.cancelled

    @property
    def task_id(self) -> str | None:
        return self.get_task_id()

    @property
    def actor_id(self) -> str | None:
        return self.get_actor_id()

    @property
    def node_id(self) -> str:
        return self.get_node_id()

    @property
    def job_id(self) -> str:
        return self.get_job_id()

    @property
    def namespace(self) -> str:
        """The job's namespace; in a task or actor, that of the job that submitted it."""
        from scaler.compat.ray.session import current_namespace

        return current_namespace()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(f"'RuntimeContext' object has no attribute {name!r}")
        raise UnsupportedAPIError(f"ray.runtime_context.RuntimeContext.{name} is not supported by Scaler")

    def get(self) -> dict[str, Any]:
        found: dict[str, Any] = {"job_id": self.get_job_id(), "node_id": self.get_node_id()}
        found["namespace"] = self.namespace
        found["task_id"] = self.get_task_id()
        found["actor_id"] = self.get_actor_id()
        return found


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext()


__all__ = ["RuntimeContext", "get_runtime_context"]
