"""``scaler_top tcp://HOST:PORT``: queues per capability set, workers and load, adapters with their
groups and units by state (each unit with its cause, age and last moves), each adapter's cost per
hour against its budget (``max_cost_per_hour``), and the last scaling
decisions with their reasons, refreshed live.

It connects as a *monitor* peer (no tasks, no objects) and asks for the scheduler's status once per
refresh. ``--once`` prints one snapshot and exits. Needs ``rich`` (``pip install 'scaler[top]'``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import zmq

from scaler.protocol import messages as m
from scaler.protocol.wire import encode, split_batch
from scaler.utility.security import keys_from_env
from scaler.utility.sockets import dial

UNITS_SHOWN = 20


class Monitor:
    def __init__(self, address: str) -> None:
        self.context = zmq.Context()
        self.socket = dial(self.context, "m", address, keys_from_env(), linger_ms=0)
        self.socket.connect(address)
        self.socket.send_multipart([encode([m.Hello("monitor", m.PROTOCOL_VERSION, "scaler_top", pid=os.getpid())])])

    def status(self, timeout: float = 5.0) -> m.StatusReply:
        self.socket.send_multipart([encode([m.StatusRequest()])])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.socket.poll(int(max(0.0, deadline - time.monotonic()) * 1000) + 1):
                continue
            for msg, _ in split_batch(self.socket.recv_multipart()):
                if isinstance(msg, m.StatusReply):
                    return msg
                if isinstance(msg, m.Refused):
                    raise ConnectionError(f"the scheduler refused scaler_top: {msg.reason}")
        raise TimeoutError(f"no status from the scheduler within {timeout:g}s")

    def close(self) -> None:
        self.socket.close(0)
        self.context.term()


def render(reply: m.StatusReply, address: str) -> Any:
    from rich.console import Group
    from rich.table import Table

    s = reply.status
    summary = Table(title=f"scheduler {address}", show_header=False, expand=True)
    summary.add_row(
        f"workers {s.get('workers', 0)}",
        f"clients {s.get('clients', 0)}",
        f"tasks {s.get('tasks', 0)}",
        f"done {s.get('total_done', 0)}",
        f"failed {s.get('total_failed', 0)}",
        f"objects {s.get('objects', 0)} ({int(s.get('object_bytes', 0)) / 1e6:.1f} MB)",
    )
    queues = Table(title="queues by capability set", expand=True)
    queues.add_column("capabilities")
    queues.add_column("queued", justify="right")
    for key, value in sorted(s.items()):
        if key.startswith("queue["):
            queues.add_row(key[6:-1] or "(any)", str(value))
    workers = Table(title="workers", expand=True)
    for column in ("name", "capabilities", "in use", "running", "assigned", "unstarted", "done", "unit"):
        workers.add_column(column)
    for w in reply.workers:
        name = str(w["name"]) + (" (draining)" if w.get("draining") else "")
        if w.get("interrupted"):  # a spot interruption notice: its host goes soon, a replacement is on its way
            name += " (spot notice)"
        workers.add_row(
            name,
            str(w["capabilities"]),
            str(w.get("committed", "")),
            str(w.get("load", "")),
            str(w["assigned"]),
            str(w["unstarted"]),
            str(w["completed"]),
            str(w.get("unit", "")),
        )
    adapters = Table(title="adapters and groups", expand=True)
    for column in ("adapter", "group", "capabilities", "min-max", "booting", "running", "ending", "failing"):
        adapters.add_column(column)
    for row in reply.adapters:
        booting = int(row.get("launching", 0)) + int(row.get("requested", 0)) + int(row.get("booting", 0))
        ending = sum(int(row.get(s, 0)) for s in ("draining", "terminating", "termination_failed"))
        adapters.add_row(
            str(row["adapter"]),
            str(row["group"]),
            str(row["capabilities"]),
            f"{row['min']}-{row['max']}",
            str(booting),
            str(row.get("running", 0)),
            str(ending),
            str(row.get("failing", "")),
        )
    costs = Table(title="cost per hour by adapter", expand=True)
    for column in ("adapter", "$/h now", "budget $/h"):
        costs.add_column(column)
    for adapter, (now_cost, budget) in cost_by_adapter(reply.adapters).items():
        costs.add_row(adapter, f"{now_cost:.2f}", "none" if budget is None else f"{budget:.2f}")
    units = Table(title="units", expand=True)
    for column in ("adapter/unit", "state", "for", "cause", "last moves"):
        units.add_column(column)
    now = time.time()
    for row in reply.units[-UNITS_SHOWN:]:
        age = max(0.0, now - float(row.get("since", now)))
        units.add_row(
            f"{row['adapter']}/{row['unit']}", str(row["state"]), f"{age:.0f}s", str(row["cause"]), str(row["moves"])
        )
    decisions = Table(title="last scaling decisions", expand=True, show_header=False)
    for line in reply.decisions[-10:] or ["(no scaling decisions yet)"]:
        decisions.add_row(line)
    return Group(summary, queues, workers, adapters, costs, units, decisions)


def cost_by_adapter(rows: list[dict[str, int | float | str]]) -> dict[str, tuple[float, float | None]]:
    """Adapter -> (its cost per hour now, summed over its groups; its ``max_cost_per_hour`` or None)."""
    out: dict[str, tuple[float, float | None]] = {}
    for row in rows:
        adapter = str(row["adapter"])
        spent, _ = out.get(adapter, (0.0, None))
        budget = row.get("max_cost_per_hour", "")
        out[adapter] = (spent + float(row.get("cost_per_hour", 0.0)), None if budget == "" else float(budget))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scaler_top", description="Live view of a Scaler scheduler.")
    parser.add_argument("address", help="tcp://HOST:PORT of the scheduler")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    args = parser.parse_args(argv)
    try:
        from rich.console import Console
        from rich.live import Live
    except ModuleNotFoundError:
        print("scaler_top needs rich: pip install 'scaler[top]'", file=sys.stderr)
        raise SystemExit(2) from None
    monitor = Monitor(args.address)
    console = Console()
    try:
        if args.once:
            console.print(render(monitor.status(), args.address))
            return
        with Live(render(monitor.status(), args.address), console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(args.interval)
                live.update(render(monitor.status(), args.address))
    except KeyboardInterrupt:
        pass
    except (TimeoutError, ConnectionError) as exc:
        print(f"scaler_top: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        monitor.close()


if __name__ == "__main__":
    main()
