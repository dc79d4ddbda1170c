"""Dead peers are noticed at once, and stuck peers never hang (issue 10, part 5).

- A client learns that its scheduler died from the dropped connection, not after its peer timeout.
- A worker or adapter whose handshake fails (wrong or missing secret or keys) says why and exits
  non-zero at once, instead of blocking forever in a send; one that never joined exits non-zero
  after its death timeout.
- A worker the scheduler dropped while it was frozen says hello again and takes new work.
- Work of a client that is gone does not start: a client killed with 1,000 queued tasks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scaler import Client, ClientConfig, ConnectionFailedError, LocalCluster, WorkerCrashedError
from scaler.scheduler.config import SchedulerConfig
from scaler.utility.net import free_port
from scaler.utility.security import generate
from tests.conftest import wait_until, wait_workers


def test_client_notices_a_killed_scheduler_from_the_dropped_connection(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=1)
    # A 30 s peer timeout: only the dropped connection can explain a failure within seconds.
    client = Client(cluster.address, ClientConfig(peer_timeout=30.0))
    try:
        wait_workers(client, 1)
        running = client.submit(time.sleep, 60)
        queued = client.submit(pow, 2, 10)
        wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) == 1)
        assert cluster.scheduler is not None
        start = time.monotonic()
        cluster.scheduler.send_signal(signal.SIGKILL)
        with pytest.raises(ConnectionFailedError, match=r"lost the connection to scheduler"):
            running.result(10)
        assert time.monotonic() - start < 10.0  # the peer timeout is 30 s
        with pytest.raises(ConnectionFailedError):
            client.get(queued, timeout=1)
        with pytest.raises(ConnectionFailedError):
            client.submit(pow, 2, 2)
    finally:
        client.close()


def _start_scheduler_without_workers(make_cluster: Callable[..., LocalCluster]) -> str:
    cluster = make_cluster(n_workers=0)
    return cluster.address


def _worker_env(tmp_path: Path, secret: str | None) -> dict[str, str]:
    env = dict(os.environ, SCALER_LOG_LEVEL="INFO", XDG_RUNTIME_DIR=str(tmp_path))  # no secret file found there
    env.pop("SCALER_CLUSTER_SECRET", None)
    env.pop("SCALER_CURVE_KEYS", None)
    if secret is not None:
        env["SCALER_CLUSTER_SECRET"] = secret
    return env


def _wait_exit(process: subprocess.Popen[str], limit: float) -> tuple[int, str, float]:
    start = time.monotonic()
    try:
        _, stderr = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(f"still running after {limit:g}s; it logged:\n{stderr}") from None
    assert process.returncode is not None
    return process.returncode, stderr, time.monotonic() - start


@pytest.mark.parametrize("credentials", ["wrong secret", "no secret", "curve keys"])
def test_worker_that_fails_the_handshake_says_why_and_exits_nonzero(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path, credentials: str
) -> None:
    address = _start_scheduler_without_workers(make_cluster)
    args: list[str] = []
    secret = "not-the-cluster-secret" if credentials == "wrong secret" else None
    if credentials == "curve keys":
        args = ["--curve-keys", str(generate(tmp_path / "keys").directory)]
    argv = [sys.executable, "-m", "scaler.worker.main", address, "--death-timeout", "60", *args]
    process = subprocess.Popen(argv, env=_worker_env(tmp_path, secret), stderr=subprocess.PIPE, text=True)
    code, stderr, took = _wait_exit(process, 45.0)
    assert code != 0, stderr
    # Wide margin for a loaded machine: with no secret the dial first waits 5 s for one to appear.
    assert took < 30.0, "at the handshake failure, not after the 60 s death timeout"
    assert address in stderr and "handshake" in stderr, stderr
    assert ("secret" in stderr) if credentials != "curve keys" else ("CURVE" in stderr), stderr


def test_worker_that_never_joins_exits_nonzero_after_its_death_timeout(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    argv = [sys.executable, "-m", "scaler.worker.main", address, "--death-timeout", "2"]
    process = subprocess.Popen(argv, env=_worker_env(tmp_path, "any"), stderr=subprocess.PIPE, text=True)
    code, stderr, took = _wait_exit(process, 20.0)
    assert code != 0, "a worker that never joined failed: a supervisor should see it"
    assert took >= 1.5 and address in stderr, stderr


def test_adapter_that_fails_the_handshake_says_why_and_exits_nonzero(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    address = _start_scheduler_without_workers(make_cluster)
    config = tmp_path / "deploy.toml"
    config.write_text(
        f"""
[scheduler]
address = "{address}"
[[adapter]]
provider = "fake"
name = "liveness"
reconcile_interval = 0.2
state_dir = "{tmp_path / "state"}"
[[adapter.group]]
name = "cpu"
capabilities = "cpu=1"
max_units = 1
"""
    )
    argv = [sys.executable, "-m", "scaler.adapters.fake.main", "--config", str(config)]
    process = subprocess.Popen(argv, env=_worker_env(tmp_path, "wrong"), stderr=subprocess.PIPE, text=True)
    code, stderr, took = _wait_exit(process, 45.0)
    assert code != 0, stderr
    assert took < 30.0 and address in stderr and "handshake" in stderr, stderr


def agent_pid() -> int:
    return os.getppid()


def test_worker_dropped_while_frozen_says_hello_again_and_takes_new_work(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=1, scheduler_args=("--peer-timeout", "3"), worker_args=("--death-timeout", "30"))
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        worker = cluster.workers[0]
        # Its only slot is busy when it freezes; the scheduler gives up on this task (no retries).
        doomed = client.options(max_retries=0).submit(time.sleep, 300)
        wait_until(lambda: client.scheduler_status().status.get("tasks_running", 0) == 1)
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: client.scheduler_status().status["workers"] == 0, 20)
            with pytest.raises(WorkerCrashedError):
                doomed.result(10)
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        # The same worker (its one slot freed of the abandoned task) runs what comes next.
        assert client.submit(agent_pid).result(20) == worker.pid
        assert worker.poll() is None
        assert client.scheduler_status().status["workers"] == 1


def _start_scheduler(address: str, env: dict[str, str]) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "scaler.scheduler.main", address, "--log-level", "WARNING"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().startswith("SCALER_ADDRESS")
    return process


AGENT_PID_CLIENT = """
import os, sys
from scaler import Client
with Client(sys.argv[1]) as client:
    print(client.submit(os.getppid).result(30))
"""


def test_worker_rejoins_a_scheduler_restarted_with_a_new_secret(tmp_path: Path) -> None:
    # Everyone finds the secret in the file a scheduler publishes for its port (none in the environment).
    env = _worker_env(tmp_path, None)
    address = f"tcp://127.0.0.1:{free_port()}"
    secret_file = tmp_path / "scaler" / f"127.0.0.1-{address.rsplit(':', 1)[1]}.secret"
    processes = [_start_scheduler(address, env)]
    worker = subprocess.Popen([sys.executable, "-m", "scaler.worker.main", address, "--death-timeout", "30"], env=env)
    processes.append(worker)
    try:
        ask = [sys.executable, "-c", AGENT_PID_CLIENT, address]
        assert subprocess.run(ask, env=env, capture_output=True, text=True, timeout=60).stdout.split() == [
            str(worker.pid)
        ]
        old_secret = secret_file.read_bytes()
        processes[0].kill()  # its secret file stays behind
        processes[0].wait()
        processes.append(_start_scheduler(address, env))
        assert secret_file.read_bytes() != old_secret
        result = subprocess.run(ask, env=env, capture_output=True, text=True, timeout=60)
        assert result.stdout.split() == [str(worker.pid)], result.stderr
        assert worker.poll() is None
    finally:
        for process in reversed(processes):
            process.kill()
            process.wait()


# A prefetched task may start in the moment before its worker hears that its client is gone: per
# worker, the one running, the one staged behind it in a task process, and ``prefetch`` parked ones.
LATE_START_BOUND = 2 * (SchedulerConfig().prefetch + 2)


RECORDING_CLIENT = """
import sys, time
from scaler import Client

def record_start(path, seconds):
    import time
    with open(path, "a") as f:
        f.write(f"{time.time()!r}\\n")
    time.sleep(seconds)

client = Client(sys.argv[1])
futures = [client.submit(record_start, sys.argv[2], 0.005) for _ in range(1000)]
client.sync()  # the scheduler holds all 1,000 now
print("SUBMITTED", flush=True)
time.sleep(600)
"""


def test_tasks_of_a_killed_client_do_not_start(make_cluster: Callable[..., LocalCluster], tmp_path: Path) -> None:
    # A 30 s peer timeout: the scheduler must act on the dropped connection, not on silence.
    cluster = make_cluster(n_workers=2, scheduler_args=("--peer-timeout", "30"))
    starts = tmp_path / "starts"
    starts.touch()
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    argv = [sys.executable, "-c", RECORDING_CLIENT, cluster.address, str(starts)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    try:
        with Client(cluster.address) as observer:
            wait_workers(observer, 2)
            assert process.stdout is not None and process.stdout.readline().strip() == "SUBMITTED"
            killed_at = time.time()
            process.kill()
            process.wait()
            wait_until(lambda: observer.scheduler_status().status["tasks"] == 0, 20)
            time.sleep(max(1.0, killed_at + 2.5 - time.time()))  # what was on its way to start has started
            times = [float(line) for line in starts.read_text().split()]
            late = [t for t in times if t > killed_at]
            very_late = [t for t in times if t > killed_at + 1.5]
            counts = f"{len(times)} started, {len(late)} after the kill, {len(very_late)} over 1.5 s after it"
            assert len(late) <= LATE_START_BOUND and not very_late, counts
            assert len(times) < 1000 - LATE_START_BOUND, "the client was killed with most of its tasks queued"
            assert observer.scheduler_status().status["clients"] == 1
    finally:
        process.kill()
