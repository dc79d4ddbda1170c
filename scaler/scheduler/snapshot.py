"""The engine's state as one typed snapshot: task counts by state, totals, queues, workers.

``scaler_top``, the status command and tests read it; the server adds the adapters' rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaler.protocol import messages as m
from scaler.utility.capabilities import Capabilities, declared, format_capabilities

if TYPE_CHECKING:
    from scaler.scheduler.engine import Engine


def shown(caps: Capabilities) -> str:
    """A worker's capabilities as it declared them (with what placement groups hold), not its name label."""
    return format_capabilities(Capabilities(caps.quantities, declared(caps).labels))


def engine_status(engine: Engine) -> m.StatusReply:
    by_state: dict[str, int] = {}
    for task in engine.tasks.values():
        by_state[task.state.value] = by_state.get(task.state.value, 0) + 1
    status: dict[str, int | float | str] = {f"tasks_{k}": v for k, v in by_state.items()}
    status.update({f"total_{k}": v for k, v in engine.counts.items()})
    status.update(
        tasks=len(engine.tasks),
        objects=len(engine.store.objects),
        object_bytes=engine.store.nbytes,
        held_refs=len(engine.store.holders),
        workers=len(engine.pool.workers),
        clients=len(engine.clients),
    )
    for key, depth in engine.queues.depth().items():
        status[f"queue[{key}]"] = depth
    workers: list[dict[str, int | float | str]] = [
        {
            "name": w.name,
            "capabilities": shown(w.capabilities),
            "assigned": len(w.assigned),
            "unstarted": w.unstarted,
            "committed": ",".join(f"{k}={v:g}" for k, v in w.committed.items() if v),
            "unit": w.unit,
            "draining": int(w.draining),
            "interrupted": int(w.interrupted > 0),
            "completed": w.completed,
            "load": w.load,
            "pid": w.pid,
            "host": w.host,
        }
        for w in engine.pool.workers.values()
    ]
    return m.StatusReply(status, workers)
