"""``ray.get_runtime_context()``: ids of the current task and actor, and this node.

Also ``ray.runtime_context`` itself. Any other public name, of the module or of a ``RuntimeContext``
(``get_worker_id``, ``get_assigned_resources``, ...), raises ``NotImplementedError`` naming it.
"""

from __future__ import annotations

import socket
from typing import Any

from scaler.compat.ray.unsupported import UnsupportedAPIError, module_getattr
from scaler.worker import dedicated, runtime

__getattr__ = module_getattr("ray.runtime_context")


class RuntimeContext:
    def get_task_id(self) -> str | None:
        current = runtime.current()
        return current.task_id if current is not None else None

    def get_actor_id(self) -> str | None:
        return dedicated.current_host_id()

    def get_job_id(self) -> str:
        return "01000000"

    def get_node_id(self) -> str:
        return socket.gethostname()

    @property
    def task_id(self) -> str | None:
        return self.get_task_id()

    @property
    def actor_id(self) -> str | None:
        return self.get_actor_id()

    @property
    def namespace(self) -> str:
        """The job's namespace; in a task or actor, that of the job that submitted it."""
        from scaler.compat.ray.session import current_namespace

        return current_namespace()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(f"'RuntimeContext' object has no attribute {name!r}")
        raise UnsupportedAPIError(f"ray.runtime_context.RuntimeContext.{name} is not supported by Scaler")

    def get(self) -> dict[str, str | None]:
        return {"task_id": self.get_task_id(), "actor_id": self.get_actor_id(), "node_id": self.get_node_id()}


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext()


__all__ = ["RuntimeContext", "get_runtime_context"]
