"""A chaos run anyone can repeat: under steady kills, nothing is lost, wrong, doubled or left behind.

    python benchmarks/chaos.py [--duration 60] [--kill-interval 0.5] [--seed N]

Why: the failure tests kill one thing once, in a quiet cluster. This runs the whole system on
127.0.0.1 (a scheduler and a local adapter from one deployment file, as ``scaler_scheduler --config``
and ``scaler_worker_adapter_local --config``; a hand-started worker; steady and mortal client
processes) under a stream of short tasks, and SIGKILLs a random worker process (agent or task
process) every ``--kill-interval``, the adapter now and then (restarted: its workers die with it and
must come back, as ``min_units`` asks) and a mortal client (replaced: its tasks are not counted).

Tasks: plain; taking a ``client.put`` ref (small, or 1 MiB in shared memory inside a dict); taking a
1 MiB numpy argument (shared memory; the task writes to its copy-on-write view first, so a retry
that saw the write is wrong); nested (a subtask through an in-task ``Client()``). Each run of a task
appends a byte to a marker file named after it; each result is checked against the value its client
computed. ``max_retries=20`` (default 3), since a task may meet several kills; beyond that any error
counts as lost. Exits 1 if lost, wrong, delivered twice (a result sent to its client more than once),
leftover processes or /dev/shm bytes is non-zero, or the adapter's workers did not come back.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import glob
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from scaler.client.client import Client
from scaler.protocol import messages as m
from scaler.utility.lifetime import die_with_parent, parent_from_env
from scaler.utility.net import free_port

ARRAY_LEN = 1 << 17  # int64: 1 MiB, over the 512 KiB shared-memory threshold
WINDOW = 64  # unfinished tasks per client
COUNTS = ("submitted", "delivered", "wrong", "lost", "twice")


def mark(marks: str, key: str) -> None:
    with open(os.path.join(marks, key), "ab") as f:  # one byte per run, appended (O_APPEND) at close
        f.write(b"x")


def plain(marks: str, key: str, x: int, ms: float) -> int:
    mark(marks, key)
    time.sleep(ms / 1000)
    return x * x + 1


def summed(marks: str, key: str, values: Any, salt: int) -> int:
    import numpy as np

    mark(marks, key)
    if isinstance(values, dict):
        values = values["v"]
    return int(np.asarray(values, dtype=np.int64).sum()) + salt


def scribble_and_sum(marks: str, key: str, array: Any) -> int:
    mark(marks, key)
    array[0] += 7  # private to this run: a retry must see the original
    return int(array.sum())


def nested(marks: str, key: str, x: int, max_retries: int) -> int:
    mark(marks, key)
    with Client() as client:
        return int(client.options(max_retries=max_retries).submit(plain, marks, f"{key}.sub", x, 1).result()) * 2


class CountingClient(Client):
    """Counts the results the scheduler sends for each task: more than one is a double delivery."""

    def __init__(self, address: str) -> None:
        self.deliveries: dict[str, int] = {}
        super().__init__(address)

    def _on_result(self, msg: m.TaskResult, payload: list[Any]) -> None:
        self.deliveries[msg.task_id] = self.deliveries.get(msg.task_id, 0) + 1
        super()._on_result(msg, payload)


def submit_one(client: Client, rng: random.Random, marks: str, key: str, retries: int) -> tuple[Any, int]:
    """Submit one task of a random kind; return its future and the result it must give."""
    import numpy as np

    opts = client.options(max_retries=retries)
    kind, x = rng.random(), rng.randrange(1 << 20)
    if kind < 0.3:
        return opts.submit(plain, marks, key, x, rng.uniform(0, 20)), x * x + 1
    if kind < 0.45:
        values = [rng.randrange(1000) for _ in range(rng.randrange(1, 50))]
        return opts.submit(summed, marks, key, client.put(values), x), sum(values) + x
    n, base = ARRAY_LEN, rng.randrange(1000)
    total = n * base + n * (n - 1) // 2
    if kind < 0.6:
        return opts.submit(summed, marks, key, {"v": client.put(np.arange(n, dtype=np.int64) + base)}, x), total + x
    if kind < 0.8:
        return opts.submit(scribble_and_sum, marks, key, np.arange(n, dtype=np.int64) + base), total + 7
    return opts.submit(nested, marks, key, x, retries), (x * x + 1) * 2


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def run_client(name: str, a: argparse.Namespace) -> None:
    """Submit until ``a.until``, check every result, wait for the rest, write ``<name>.json``."""
    die_with_parent(parent_from_env())
    work, until = Path(a.work), float(a.until)
    rng, marks = random.Random(f"{a.seed}-{name}"), str(work / "marks")
    client = CountingClient(a.address)
    pending: dict[str, tuple[Any, int]] = {}
    stats: dict[str, Any] = {**dict.fromkeys(COUNTS, 0), "problems": []}

    def settle(key: str, future: Any, expected: int) -> None:
        error = future.exception(0)
        if error is not None:
            stats["lost"] += 1
            stats["problems"].append(f"{key}: {type(error).__name__}: {error}"[:400])
        elif future.result() != expected:
            stats["wrong"] += 1
            stats["problems"].append(f"{key}: got {future.result()!r}, expected {expected}")
        else:
            stats["delivered"] += 1

    seq, next_progress = 0, 0.0
    while time.time() < until:
        for key in [k for k, (f, _) in pending.items() if f.done()]:
            settle(key, *pending.pop(key))
        if len(pending) < WINDOW:
            key = f"{name}-{seq}"
            pending[key] = submit_one(client, rng, marks, key, a.max_retries)
            seq, stats["submitted"] = seq + 1, stats["submitted"] + 1
        if time.monotonic() > next_progress:  # what a killed client had done, for the record
            next_progress = time.monotonic() + 1.0
            write_json(work / f"{name}.progress", {k: v for k, v in stats.items() if k != "problems"})
        time.sleep(rng.expovariate(a.rate))
    concurrent.futures.wait([f for f, _ in pending.values()], timeout=a.drain_timeout)
    for key, (future, expected) in pending.items():
        if future.done():
            settle(key, future, expected)
        else:
            stats["lost"] += 1
            stats["problems"].append(f"{key}: not delivered {a.drain_timeout:g} s after the run ended")
    time.sleep(0.5)  # a second result for a task would arrive about now
    stats["twice"] = sum(1 for n in client.deliveries.values() if n > 1)
    write_json(work / f"{name}.json", stats)
    client.close()


class Chaos:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a, self.rng = a, random.Random(a.seed)
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.dir = Path(tempfile.mkdtemp(prefix="scaler-chaos-"))
        (self.dir / "marks").mkdir()
        (self.dir / "logs").mkdir()
        self.config = self.dir / "deploy.toml"
        self.config.write_text(
            f'[scheduler]\naddress = "{self.address}"\n[scaling]\ninterval = 0.25\nidle_timeout = 600\n'
            f'[[adapter]]\nprovider = "local"\nname = "chaos"\nreconcile_interval = 0.25\nboot_timeout = 20\n'
            f'state_dir = "{self.dir}"\n[[adapter.group]]\nname = "cpu"\ncapabilities = "cpu=1"\n'
            f"min_units = {a.workers}\nmax_units = {a.workers}\n"
        )
        self.env = dict(os.environ, SCALER_LOG_LEVEL="WARNING", SCALER_PARENT_PID=str(os.getpid()))
        self.kills = {"worker processes": 0, "adapters": 0, "clients": 0}
        self.clients: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: set[str] = set()
        self.client: Client | None = None
        self.scheduler = self.spawn("scheduler", ["-m", "scaler.scheduler.main", "--config", str(self.config)], True)
        self.adapter = self.worker = self.scheduler  # until the scheduler is up

    def spawn(self, name: str, argv: list[str], pipe: bool = False) -> subprocess.Popen[bytes]:
        with open(self.dir / "logs" / f"{name}.log", "ab") as log:
            out = subprocess.PIPE if pipe else log
            return subprocess.Popen([sys.executable, *argv], env=self.env, stdout=out, stderr=log)

    def start_adapter(self) -> subprocess.Popen[bytes]:
        argv = ["-m", "scaler.adapters.local.main", "--config", str(self.config), "--log-level", "WARNING"]
        return self.spawn("adapter", argv)

    def start_worker(self) -> subprocess.Popen[bytes]:
        return self.spawn("worker", ["-m", "scaler.worker.main", self.address, "--capabilities", "cpu=1"])

    def start_client(self, prefix: str, until: float) -> None:
        name, a = f"{prefix}{len(self.clients)}", self.a
        argv = [__file__, "--client", name, "--address", self.address, "--work", str(self.dir), "--until", str(until)]
        argv += ["--rate", str(a.rate), "--max-retries", str(a.max_retries), "--seed", str(a.seed)]
        self.clients[name] = self.spawn(name, [*argv, "--drain-timeout", str(a.drain_timeout)])

    def ours(self) -> list[psutil.Process]:
        """Every live process of this run: workers name its address; the others its directory."""
        found = []
        for p in psutil.process_iter(["cmdline", "status"]):
            args = p.info["cmdline"] or []
            if p.pid != os.getpid() and p.info["status"] != psutil.STATUS_ZOMBIE and "scaler" in " ".join(args):
                if self.address in args or any(str(self.dir) in arg for arg in args):
                    found.append(p)
        return found

    def kill_a_worker_process(self) -> None:
        victims = [p for p in self.ours() if "scaler.worker.main" in " ".join(p.info["cmdline"])]
        with contextlib.suppress(psutil.Error, IndexError):
            self.rng.choice(victims).kill()
            self.kills["worker processes"] += 1

    def status(self) -> m.StatusReply:
        self.client = self.client or Client(self.address)
        return self.client.scheduler_status()

    def adapter_workers(self, timeout: float) -> int:
        """The adapter's workers known to the scheduler, once there are ``min_units`` (or at ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            back = sum(1 for w in self.status().workers if w.get("unit"))
            if back >= self.a.workers or time.monotonic() > deadline:
                return back
            time.sleep(0.25)

    def run(self) -> int:
        try:
            return self.chaos()
        except BaseException:
            for process in self.ours():
                process.kill()
            print(f"chaos run aborted; logs in {self.dir}", file=sys.stderr)
            raise

    def chaos(self) -> int:
        a, stdout = self.a, self.scheduler.stdout
        if stdout is None or not stdout.readline().startswith(b"SCALER_ADDRESS"):
            raise RuntimeError(f"the scheduler did not start; see {self.dir}/logs/scheduler.log")
        # Peers start once the scheduler is up, as an operator would: one started before it has
        # published the cluster secret dials without it and is refused for good.
        self.adapter, self.worker = self.start_adapter(), self.start_worker()
        if self.adapter_workers(60) < a.workers:
            raise RuntimeError(f"the adapter's workers did not start; see {self.dir}/logs")
        until = time.time() + a.duration
        for prefix, count in (("s", a.clients), ("m", a.mortal_clients)):
            for _ in range(count):
                self.start_client(prefix, until)
        now = time.monotonic()
        next_kill, next_adapter, next_client = now, now + a.adapter_interval, now + a.client_interval
        while time.time() < until:
            now = time.monotonic()
            if self.worker.poll() is not None:
                self.worker = self.start_worker()
            if now >= next_kill:
                next_kill = now + a.kill_interval
                self.kill_a_worker_process()
            if now >= next_adapter:
                next_adapter = now + a.adapter_interval
                self.adapter.kill()
                self.adapter.wait()
                self.kills["adapters"] += 1
                time.sleep(self.rng.uniform(0.2, 1.5))
                self.adapter = self.start_adapter()
            mortal = [n for n, p in self.clients.items() if n[0] == "m" and p.poll() is None]
            if now >= next_client and mortal and until - time.time() > 3:
                next_client = now + a.client_interval
                victim = self.rng.choice(mortal)
                self.clients[victim].kill()
                self.killed.add(victim)
                self.kills["clients"] += 1
                self.start_client("m", until)
            time.sleep(0.05)
        if self.worker.poll() is not None:
            self.worker = self.start_worker()
        return self.finish()

    def gather(self) -> tuple[dict[str, int], list[str]]:
        """Wait for the surviving clients; sum their reports (and what the killed ones had done)."""
        fig, problems = dict.fromkeys((*COUNTS, "killed_submitted"), 0), []
        for name, process in self.clients.items():
            report, progress = self.dir / f"{name}.json", self.dir / f"{name}.progress"
            seen = json.loads(progress.read_text()) if progress.exists() else dict.fromkeys(COUNTS, 0)
            if name in self.killed:
                fig["killed_submitted"] += seen["submitted"]
                fig["wrong"] += seen["wrong"]  # a wrong result is wrong even if its client died later
                continue
            try:
                process.wait(self.a.drain_timeout + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                problems.append(f"client {name} hung after the run (killed)")
            if report.exists():
                data = json.loads(report.read_text())
                for k in COUNTS:
                    fig[k] += data[k]
                problems += data["problems"]
            else:
                fig["submitted"] += seen["submitted"]
                fig["lost"] += max(1, seen["submitted"] - seen["delivered"])
                problems.append(f"client {name} exited with {process.returncode} and no report")
        return fig, problems

    def finish(self) -> int:
        a = self.a
        fig, problems = self.gather()
        survivors = {n for n in self.clients if n not in self.killed}
        runs = [f.stat().st_size for f in (self.dir / "marks").iterdir() if f.name.split("-")[0] in survivors]
        back = self.adapter_workers(30)
        retried = self.status().status.get("total_retried", "?")
        leftover, shm_bytes = self.shutdown()
        kills = ", ".join(f"{n} {what}" for what, n in self.kills.items())
        lines = [
            f"chaos run: {a.duration:g} s, seed {a.seed}, {a.clients} steady + {a.mortal_clients} mortal clients "
            f"at {a.rate:g} tasks/s each, max_retries={a.max_retries}; killed {kills}; scheduler retries {retried}",
            f"tasks submitted: {fig['submitted']} (killed clients submitted {fig['killed_submitted']} more)",
            f"delivered once: {fig['delivered'] - fig['twice']}",
            f"delivered twice: {fig['twice']}",
            f"ran twice: {sum(1 for size in runs if size > 1)} (task bodies, subtasks included; allowed)",
            f"lost: {fig['lost']}",
            f"wrong: {fig['wrong']}",
            f"adapter workers back: {back}/{a.workers}",
            f"leftover processes: {leftover}",
            f"leftover /dev/shm bytes: {shm_bytes}",
            *(f"  problem: {problem}" for problem in problems[:20]),
        ]
        print("\n".join(lines), flush=True)
        if fig["lost"] or fig["wrong"] or fig["twice"] or leftover or shm_bytes or back < a.workers or problems:
            print(f"logs and markers kept in {self.dir}")
            return 1
        shutil.rmtree(self.dir, ignore_errors=True)
        return 0

    def shutdown(self) -> tuple[int, int]:
        """Stop the cluster as an operator would (SIGTERM); count what is still alive after 5 s and the
        scheduler's segments left in /dev/shm; then clear both, so the run leaves nothing behind."""
        if self.client is not None:
            self.client.close()
        for process in (self.adapter, self.worker, self.scheduler):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        if self.scheduler.stdout is not None:
            self.scheduler.stdout.close()
        deadline = time.monotonic() + 5
        while (alive := self.ours()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for process in alive:
            print(f"  leftover: pid {process.pid} {' '.join(process.info['cmdline'])[:200]}")
            with contextlib.suppress(psutil.Error):
                process.kill()
        shm_bytes = 0
        for path in glob.glob(f"/dev/shm/scaler-{self.scheduler.pid}-*"):
            with contextlib.suppress(OSError):
                shm_bytes += os.stat(path).st_size
                os.unlink(path)
        return len(alive), shm_bytes


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Kill workers, adapters and clients under load; count what went wrong.")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of chaos")
    p.add_argument("--kill-interval", type=float, default=0.5, help="seconds between worker-process kills")
    p.add_argument("--adapter-interval", type=float, default=8.0, help="seconds between adapter kills")
    p.add_argument("--client-interval", type=float, default=4.0, help="seconds between mortal-client kills")
    p.add_argument("--clients", type=int, default=2, help="steady client processes (never killed)")
    p.add_argument("--mortal-clients", type=int, default=1, help="client processes killed and replaced")
    p.add_argument("--rate", type=float, default=25.0, help="tasks per second per client")
    p.add_argument("--workers", type=int, default=2, help="the adapter's min_units (= max_units)")
    p.add_argument("--max-retries", type=int, default=20)
    p.add_argument("--drain-timeout", type=float, default=60.0, help="how long a client waits after the run")
    p.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    for internal in ("--client", "--address", "--work", "--until"):  # a client process's own arguments
        p.add_argument(internal, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.client:
        run_client(a.client, a)
        return 0
    return Chaos(a).run()


if __name__ == "__main__":
    sys.exit(main())
