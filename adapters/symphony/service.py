"""The program the ScalerWorker service runs on a compute host: a unit's workers, from its task's input.

The task input is the JSON the provider writes (``provider.task_input``): each worker's argv, the
environment, and the credential files (CURVE keys), which are written 0600 into a fresh 0700
directory and named to the workers by environment, never on a command line. The program starts the
workers, passes SIGTERM/SIGINT on to them (closing the session ends the task), waits for them, removes
the key files and exits with the first failing worker's status.

It reads the input from the file ``--input`` names, or from standard input (``--input -``, the
default). Under Symphony, the profile's start command passes ``--soam``: the input then arrives as
each task's input through Symphony's service API (``soam``, an assumed binding).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

KEYS_PLACEHOLDER = "{keys}"


class InputError(ValueError):
    """The task input is not a worker-launch description."""


def parse(data: bytes) -> dict[str, Any]:
    try:
        description = json.loads(data)
    except ValueError as exc:
        raise InputError(f"the task input is not JSON: {exc}") from None
    if not isinstance(description, dict) or not isinstance(description.get("workers"), list):
        raise InputError("the task input has no 'workers' list: not a worker-launch description")
    for key in ("environment", "files", "file_environment"):
        if not isinstance(description.get(key, {}), dict):
            raise InputError(f"the task input's {key!r} is not an object")
    return description


def place_files(files: dict[str, str]) -> Path | None:
    """The credential files, 0600 in a new 0700 directory (None if there are none)."""
    if not files:
        return None
    directory = Path(tempfile.mkdtemp(prefix="scaler-keys."))
    for name, text in files.items():
        if "/" in name or name.startswith("."):
            raise InputError(f"the task input names a credential file {name!r} outside its directory")
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    return directory


def run(description: dict[str, Any]) -> int:
    """Starts the workers, waits for them (forwarding SIGTERM/SIGINT), returns the exit status."""
    keys = place_files(dict(description.get("files", {})))
    environment = {**os.environ, **{str(k): str(v) for k, v in description.get("environment", {}).items()}}
    for key, value in description.get("file_environment", {}).items():
        environment[str(key)] = str(value).replace(KEYS_PLACEHOLDER, str(keys or ""))
    workers: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        for argv in description["workers"]:
            workers.append(subprocess.Popen([str(part) for part in argv], env=environment, stdin=subprocess.DEVNULL))
        codes = [worker.wait() for worker in workers]
    finally:
        if keys is not None:
            shutil.rmtree(keys, ignore_errors=True)
    return next((code for code in codes if code), 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scaler.adapters.symphony.service", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default="-", help="the task input file ('-': standard input)")
    parser.add_argument("--soam", action="store_true", help="take each task's input from Symphony (soamapi)")
    args = parser.parse_args(argv)
    if args.soam:
        from scaler.adapters.symphony import soam

        soam.serve()
        return
    try:
        data = sys.stdin.buffer.read() if args.input == "-" else Path(args.input).read_bytes()
        description = parse(data)
    except (OSError, InputError) as exc:
        print(f"scaler.adapters.symphony.service: {args.input}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(run(description))


if __name__ == "__main__":
    main()
