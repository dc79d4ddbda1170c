"""``scaler run [--config F] program.py [args...]``: a cluster for one program's run, and nothing left after it.

Starts the deployment as ``with Cluster(...)`` does (the embedded local cluster without ``--config``),
runs the program against it unchanged (``python -m scaler.compat.ray``, so a Ray program uses the
cluster whether or not Ray is installed, and a Scaler program finds it in ``SCALER_ADDRESS``), streams
its output and the workers', passes Ctrl-C and SIGTERM on to it, tears the cluster down however the
program ended, and exits with the program's exit code (128 + N when a signal N ended it). A cluster
that could not start exits 2; one whose units outlived the teardown exits 3.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from scaler.client.output import STREAM_ENV

START_FAILED, TEARDOWN_FAILED = 2, 3


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scaler", description="Scaler's commands.")
    commands = p.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a program on a cluster that lives as long as it does")
    run.add_argument("--config", type=Path, default=None, help="deployment TOML (default: a local cluster)")
    run.add_argument("--provider", default=None, help="use only the file's adapters of this provider")
    run.add_argument("--activation-timeout", type=float, default=600.0, help="seconds to wait for the minimum workers")
    run.add_argument("--teardown-timeout", type=float, default=120.0, help="seconds to wait for every unit to go")
    run.add_argument("--quiet", action="store_true", help="do not stream the workers' output")
    run.add_argument("--log-level", default="WARNING")
    run.add_argument("program", help="the Python program to run")
    run.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    return p


def run(a: argparse.Namespace) -> int:
    from scaler.cluster.ephemeral import Cluster, ClusterActivationError, ClusterTeardownError

    try:
        cluster = Cluster(
            config=a.config,
            provider=a.provider,
            activation_timeout_seconds=a.activation_timeout,
            teardown_timeout_seconds=a.teardown_timeout,
            forward_logs=not a.quiet,
            log_level=a.log_level,
        )
    except (ValueError, OSError) as exc:
        print(f"scaler run: {exc}", file=sys.stderr)
        return START_FAILED
    code = 0
    try:
        with cluster:
            code = _program(cluster.address, a.program, a.args, not a.quiet)
    except ClusterActivationError as exc:
        print(f"scaler run: {exc}", file=sys.stderr)
        return START_FAILED
    except ClusterTeardownError as exc:
        print(f"scaler run: {exc}", file=sys.stderr)
        return code or TEARDOWN_FAILED
    return code


def _program(address: str, program: str, args: list[str], stream: bool) -> int:
    argv = [sys.executable, "-m", "scaler.compat.ray", "--address", address, program, *args]
    env = dict(os.environ, SCALER_ADDRESS=address)
    if stream:
        env[STREAM_ENV] = "1"
    child = subprocess.Popen(argv, env=env)

    def forward(signum: int, frame: Any) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> None:
    a = parser().parse_args(argv)
    if a.command == "run":
        if not Path(a.program).is_file():
            print(f"scaler run: no such program: {a.program}", file=sys.stderr)
            raise SystemExit(START_FAILED)
        raise SystemExit(run(a))


if __name__ == "__main__":
    main()
