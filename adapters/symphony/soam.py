"""The service wrapper's binding to Symphony's service API (SOAM), for ``service --soam`` on a compute host.

ASSUMED, not run against a real cluster (docs/symphony.md): Symphony starts the profile's
``startCmd`` as a service instance that receives tasks through the ``soamapi`` Python package, a
``ServiceContainer`` subclass whose ``on_invoke(task_context)`` reads the task's input through
``task_context.populate_task_input(message)`` into a ``soamapi.Message`` (``on_deserialize`` reading
the input stream). Here the input is the raw ``inputDataBlock`` the adapter submitted, read as one
byte string; the task runs ``service.run`` and so lasts as long as the unit's workers. Correct this
module (and nothing else) against the cluster's SOAM reference if the names differ.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from scaler.adapters.symphony.service import parse, run


def container() -> Any:
    """A service container whose every task runs a unit's workers; exit 2 with a sentence without soamapi."""
    try:
        soamapi = importlib.import_module("soamapi")
    except ImportError:
        print(
            "scaler.adapters.symphony.service --soam: the soamapi package (Symphony's Python SDK on the "
            "compute host) is not importable; without it, pass the task input with --input FILE or on stdin",
            file=sys.stderr,
        )
        raise SystemExit(2) from None

    class TaskInput(soamapi.Message):  # type: ignore[misc,name-defined]
        data = b""

        def on_serialize(self, stream: Any) -> None:
            stream.write_byte_array(self.data)

        def on_deserialize(self, stream: Any) -> None:
            self.data = bytes(stream.read_byte_array())

    class WorkerContainer(soamapi.ServiceContainer):  # type: ignore[misc,name-defined]
        def on_invoke(self, task_context: Any) -> None:
            message = TaskInput()
            task_context.populate_task_input(message)
            code = run(parse(message.data))
            if code:
                raise soamapi.FatalException(f"the unit's workers exited with status {code}")

    return WorkerContainer()


def serve() -> None:
    container().run()
