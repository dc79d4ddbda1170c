"""The SSH provider's host-side script, run as the provider runs it (``python -c <source> <verb>``) on this host.

What the conformance suite cannot easily reach: a record whose processes are gone for each reason a
host gives (they exited, the host rebooted, the leader's pid was reused) is reported once as dead and
removed; another host's records in a shared home are never listed or ended; a unit's whole process
group ends, a stopped one too; a repeated launch of a live unit starts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scaler.adapters.ssh.provider import HOSTSIDE

from tests.conftest import wait_until


def hostside(verb: str, records: Path, host: str = "h1", **request: Any) -> Any:
    body = json.dumps({**request, "records": str(records), "host": host})
    done = subprocess.run(
        [sys.executable, "-c", HOSTSIDE, verb], input=body, capture_output=True, text=True, timeout=60
    )
    if done.returncode:
        raise AssertionError(done.stderr)
    return json.loads(done.stdout)


def unit(unit_id: str, command: str = "sleep 60 & sleep 60 & wait") -> dict[str, Any]:
    return {"unit_id": unit_id, "request_id": "r1", "group": "g", "command": command, "env": {}}


def alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_unit_is_one_process_group_that_terminate_ends_whole_even_when_stopped(tmp_path: Path) -> None:
    started = hostside("launch", tmp_path, units=[unit("u1")])
    pgid = int(started["u1"]["pid"])
    wait_until(lambda: len([p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid]) == 3)
    os.killpg(pgid, 19)  # SIGSTOP: a frozen unit must still end
    assert hostside("launch", tmp_path, units=[unit("u1")])["u1"] == {"pid": pgid, "new": False}
    assert [u["state"] for u in hostside("list", tmp_path)] == ["running"]
    assert hostside("terminate", tmp_path, unit_ids=["u1"], grace=2) == {"u1": "terminated"}
    assert not alive(pgid) and not (tmp_path / "u1.json").exists()
    assert hostside("terminate", tmp_path, unit_ids=["u1"], grace=2) == {"u1": "absent"}


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


def test_records_of_gone_processes_are_reported_dead_once_and_removed(tmp_path: Path) -> None:
    started = hostside("launch", tmp_path, units=[unit("exited", "exit 0"), unit("rebooted"), unit("reused")])
    for name, change in (("rebooted", {"boot": "another-boot"}), ("reused", {"ticks": "1"})):
        record = json.loads((tmp_path / f"{name}.json").read_text())
        (tmp_path / f"{name}.json").write_text(json.dumps({**record, **change}))
    time.sleep(0.3)
    first = {u["unit_id"]: u["state"] for u in hostside("list", tmp_path)}
    assert first == {"exited": "dead", "rebooted": "dead", "reused": "dead"}
    assert hostside("list", tmp_path) == []
    for name in ("rebooted", "reused"):  # taken for another boot's or pid's: left alone, so ended here
        os.killpg(int(started[name]["pid"]), 9)


def test_another_hosts_records_in_a_shared_home_are_never_listed_or_ended(tmp_path: Path) -> None:
    started = hostside("launch", tmp_path, host="h2", units=[unit("theirs")])
    try:
        assert hostside("list", tmp_path, host="h1") == []
        assert hostside("terminate", tmp_path, host="h1", unit_ids=["theirs"], grace=1) == {"theirs": "absent"}
        assert alive(int(started["theirs"]["pid"]))
    finally:
        hostside("terminate", tmp_path, host="h2", unit_ids=["theirs"], grace=1)


def test_credentials_in_the_env_file_reach_the_workers_environment_and_the_file_goes(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "u1.env").write_text(json.dumps({"SCALER_TEST_SECRET": "s3cret"}))
    out = tmp_path / "seen"
    hostside("launch", tmp_path, units=[unit("u1", f'printf %s "$SCALER_TEST_SECRET" > {out}')])
    wait_until(lambda: out.exists() and out.read_text() == "s3cret")
    assert not (tmp_path / "u1.env").exists()
    assert "s3cret" not in (tmp_path / "u1.json").read_text()
