"""The SSH provider's half that runs on each host: start, list and end units from records kept there.

This file is sent as ``python -c <this source> <verb>`` with a JSON request on stdin and answers
JSON on stdout, so a host needs nothing but a Python 3 (it imports the standard library only, and
not scaler). A unit is one process group, started detached in its own session, and a record at
``<records>/<unit>.json`` (pid, pgid, the leader's start time and the host's boot id, request id,
group, host name) that is the host's own truth: a restarted adapter lists it and finds what an
earlier one left. The records carry the inventory's host name and a host only lists its own, so
hosts sharing one home directory (NFS homes on a cluster) do not see each other's units as theirs.
A record whose processes are gone (they exited, the host rebooted, the pid was reused) is reported
once as ``dead`` and removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

UNIT_ENV = "SCALER_UNIT_ID"


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # the pgid now belongs to another user's processes: ours are gone
    return True


def alive(record: dict[str, Any]) -> bool:
    if record.get("boot") and record["boot"] != boot_id():
        return False
    pid, pgid = int(record["pid"]), int(record["pgid"])
    ticks = start_ticks(pid)
    if ticks and record.get("ticks") and ticks != record["ticks"]:
        return False  # the leader's pid was reused
    return group_alive(pgid)


def record_path(request: dict[str, Any], unit_id: str) -> str:
    return os.path.join(os.path.expanduser(request["records"]), unit_id + ".json")


def read_record(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            found: dict[str, Any] = json.load(f)
            return found
    except (OSError, ValueError):
        return None


def remove_unit(request: dict[str, Any], unit_id: str) -> None:
    base = os.path.join(os.path.expanduser(request["records"]), unit_id)
    for suffix in (".json", ".env"):
        try:
            os.unlink(base + suffix)
        except FileNotFoundError:
            pass
    shutil.rmtree(base + ".keys", ignore_errors=True)


def launch(request: dict[str, Any]) -> dict[str, Any]:
    directory = os.path.expanduser(request["records"])
    os.makedirs(directory, mode=0o700, exist_ok=True)
    answer: dict[str, Any] = {}
    for unit in request["units"]:
        path = record_path(request, unit["unit_id"])
        found = read_record(path)
        if found is not None and alive(found):
            answer[unit["unit_id"]] = {"pid": found["pid"], "new": False}
            continue
        environment = dict(os.environ)
        environment.update(unit.get("env", {}))
        environment[UNIT_ENV] = unit["unit_id"]  # inherited by every process of the unit, wherever it goes
        env_file = os.path.join(directory, unit["unit_id"] + ".env")
        if os.path.exists(env_file):  # credentials placed over SFTP (0600): read, then removed
            with open(env_file) as f:
                environment.update(json.load(f))
            os.unlink(env_file)
        log = open(os.path.join(directory, unit["unit_id"] + ".log"), "ab")
        process = subprocess.Popen(
            ["/bin/sh", "-c", unit["command"]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=os.path.expanduser("~"),
            start_new_session=True,
        )
        log.close()
        record = {
            "unit_id": unit["unit_id"],
            "request_id": unit["request_id"],
            "group": unit["group"],
            "host": request["host"],
            "pid": process.pid,
            "pgid": process.pid,
            "ticks": start_ticks(process.pid),
            "boot": boot_id(),
            "started": time.time(),
        }
        temporary = path + ".tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(temporary, path)
        answer[unit["unit_id"]] = {"pid": process.pid, "new": True}
    return answer


def list_units(request: dict[str, Any]) -> list[dict[str, Any]]:
    directory = os.path.expanduser(request["records"])
    found: list[dict[str, Any]] = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return found
    for name in names:
        if not name.endswith(".json"):
            continue
        record = read_record(os.path.join(directory, name))
        if record is None or record.get("host") != request["host"]:
            continue
        state = "running" if alive(record) else "dead"
        if state == "dead":
            remove_unit(request, record["unit_id"])
        found.append(
            {k: record.get(k) for k in ("unit_id", "request_id", "group", "pid", "started")} | {"state": state}
        )
    return found


def escaped(unit_id: str) -> list[int]:
    """This user's processes of the unit that left its process group (``setsid`` in a task): found by the
    ``SCALER_UNIT_ID`` every process of the unit inherits."""
    marker = f"{UNIT_ENV}={unit_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _signal(pids: list[int], pgids: list[int], signum: int) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, signum)
        except OSError:
            pass
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def terminate(request: dict[str, Any]) -> dict[str, str]:
    """Ends the units all at once: SIGTERM (and SIGCONT, for stopped ones) to every unit, one shared wait of
    ``grace`` seconds, then SIGKILL to what is left, so ending N units takes one grace, not N."""
    answer: dict[str, str] = {}
    records: dict[str, dict[str, Any]] = {}
    for unit_id in request["unit_ids"]:
        record = read_record(record_path(request, unit_id))
        if record is None or record.get("host") != request["host"]:
            answer[unit_id] = "absent"
        else:
            records[unit_id] = record
    live = {u: r for u, r in records.items() if alive(r)}
    pgids = [int(r["pgid"]) for r in live.values()]

    def left() -> list[int]:
        return [pid for unit_id in records for pid in escaped(unit_id)]

    for signum in (signal.SIGTERM, signal.SIGCONT):
        _signal(left(), pgids, signum)

    def settle(seconds: float) -> None:
        deadline = time.time() + seconds
        while (any(group_alive(g) for g in pgids) or left()) and time.time() < deadline:
            time.sleep(0.05)

    settle(float(request["grace"]))
    _signal(left(), [g for g in pgids if group_alive(g)], signal.SIGKILL)
    settle(5.0)
    for unit_id, record in records.items():
        if alive(record) or escaped(unit_id):
            answer[unit_id] = "survived"
            continue
        remove_unit(request, unit_id)
        answer[unit_id] = "terminated"
    return answer


def facts(request: dict[str, Any]) -> dict[str, Any]:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    memory = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    gpus = 0
    if shutil.which("nvidia-smi"):
        try:
            listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
            gpus = sum(1 for line in listed.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            gpus = 0
    return {"cpu": cpus, "memory": memory, "gpu": gpus, "python": sys.version.split()[0]}


VERBS: dict[str, Any] = {"launch": launch, "list": list_units, "terminate": terminate, "facts": facts}

if __name__ == "__main__":
    verb = sys.argv[1] if len(sys.argv) > 1 else ""
    if verb not in VERBS:
        sys.stderr.write("usage: hostside {launch|list|terminate|facts} < request.json\n")
        sys.exit(2)
    json.dump(VERBS[verb](json.loads(sys.stdin.read() or "{}")), sys.stdout)
