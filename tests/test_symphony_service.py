"""The service wrapper a Symphony task runs, and the task input it gets: credentials as files, never on argv.

The worker-launch description (``provider.task_input``) is parsed and run by ``service`` as a real
process here: CURVE keys become 0600 files in a 0700 directory named by environment and removed when
the workers exit, or stay on the hosts with ``curve_keys_dir``; a bad input is refused with a sentence;
``--soam`` without Symphony's SDK says what is missing.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from scaler.adapters.identity import Identity
from scaler.adapters.launch import CURVE_KEYS_ENV, LaunchBuilder
from scaler.adapters.provider import WorkerGroup
from scaler.adapters.symphony import service
from scaler.adapters.symphony.provider import task_input
from scaler.adapters.testing import GROUP


def test_credentials_travel_as_files_in_the_task_input_never_on_argv(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "client.key_secret").write_text("CLIENT-SECRET-KEY")
    (keys / "server.key").write_text("SERVER-PUBLIC-KEY")
    identity = Identity("symkeys", "symphony")
    launch = LaunchBuilder(identity, "tcp://127.0.0.1:1", keys).build(WorkerGroup("g", "cpu=1", 2, 0, 1), "u1", "r1")
    description = service.parse(task_input(launch, "python3"))
    assert len(description["workers"]) == 2
    assert "CLIENT-SECRET-KEY" not in json.dumps(description["workers"])
    directory = service.place_files(description["files"])
    assert directory is not None
    assert (directory / "client.key_secret").read_text() == "CLIENT-SECRET-KEY"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "client.key_secret").stat().st_mode) == 0o600
    assert description["file_environment"] == {CURVE_KEYS_ENV: service.KEYS_PLACEHOLDER}


def test_with_a_keys_directory_on_the_hosts_the_task_input_carries_no_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "client.key_secret").write_text("CLIENT-SECRET-KEY")
    (keys / "server.key").write_text("SERVER-PUBLIC-KEY")
    launch = LaunchBuilder(Identity("symkd", "symphony"), "tcp://127.0.0.1:1", keys).build(GROUP, "u1", "r1")
    data = task_input(launch, "python3", "/shared/scaler/keys")
    assert b"CLIENT-SECRET-KEY" not in data
    description = service.parse(data)
    assert description["files"] == {} and description["environment"][CURVE_KEYS_ENV] == "/shared/scaler/keys"


def test_the_service_runs_the_workers_with_the_keys_as_files_and_removes_them(tmp_path: Path) -> None:
    reader = "import os, stat; d = os.environ['SCALER_CURVE_KEYS']; "
    reader += "print(open(d + '/client.key_secret').read(), oct(stat.S_IMODE(os.stat(d).st_mode)), d)"
    description = {
        "workers": [[sys.executable, "-c", reader]],
        "environment": {},
        "files": {"client.key_secret": "K1"},
        "file_environment": {CURVE_KEYS_ENV: service.KEYS_PLACEHOLDER},
    }
    argv = [sys.executable, "-m", "scaler.adapters.symphony.service"]
    done = subprocess.run(argv, input=json.dumps(description), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    secret, mode, directory = done.stdout.split()
    assert (secret, mode) == ("K1", "0o700")
    assert not Path(directory).exists(), "the key files are removed when the workers exit"


def test_the_soam_binding_without_soamapi_says_what_is_missing() -> None:
    argv = [sys.executable, "-m", "scaler.adapters.symphony.service", "--soam"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "soamapi package" in done.stderr


def test_a_bad_task_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(service.InputError, match="not JSON"):
        service.parse(b"\x00garbage")
    with pytest.raises(service.InputError, match="no 'workers' list"):
        service.parse(b'{"argv": []}')
