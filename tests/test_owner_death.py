"""A peer's death is noticed when its connection drops, not after the peer timeout.

The scheduler here waits 30 s for a silent peer, so anything noticed within a few seconds was
noticed through the connection: a SIGKILLed client's work is cancelled, a SIGKILLed task process's
own client is dropped with it, and an actor dies with the process that created it, failing the calls
other processes made to it with ``ActorDiedError``. A peer that reconnects under the same identity
is kept, and the Ray names of Scaler's errors are raised where Ray raises them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import zmq

from scaler import Client, LocalCluster
from scaler.errors import WorkerCrashedError, WorkerLostError
from scaler.protocol import messages as m
from scaler.protocol.wire import encode, split_batch
from scaler.utility import shm
from scaler.utility.security import apply_secret, find_secret
from tests.conftest import wait_until, wait_workers

SLOW_TIMEOUT = ("--peer-timeout", "30")
NOTICED_WITHIN = 10.0  # wide for a loaded machine; the peer timeout is 30 s


def _env() -> dict[str, str]:
    return dict(os.environ, SCALER_LOG_LEVEL="WARNING")


@contextmanager
def script(code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``code`` running as a user's program, killed at the end if still alive."""
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def read_line(process: subprocess.Popen[str], expected: str) -> str:
    if process.stdout is None:
        raise AssertionError("no stdout pipe")
    line = process.stdout.readline()
    if not line.startswith(expected):
        _, err = process.communicate(timeout=30)
        raise AssertionError(f"expected {expected!r}, got {line!r}:\n{err[-3000:]}")
    return line.strip()


def status(client: Client) -> dict[str, int | float | str]:
    return client.scheduler_status().status


SUBMITTER = """
import sys, time
from scaler import Client
client = Client(sys.argv[1])
futures = [client.options(capabilities="gpu=1").submit(time.sleep, 1) for _ in range(5)]
client.sync(10)
print("SUBMITTED", flush=True)
time.sleep(600)
"""


def test_a_sigkilled_client_is_dropped_and_its_tasks_cancelled_at_once(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=1, scheduler_args=SLOW_TIMEOUT)
    with Client(cluster.address) as client, script(SUBMITTER, cluster.address) as submitter:
        read_line(submitter, "SUBMITTED")
        assert status(client)["clients"] == 2 and status(client)["tasks"] == 5
        killed = time.monotonic()
        submitter.send_signal(signal.SIGKILL)
        wait_until(lambda: status(client)["clients"] == 1 and status(client)["tasks"] == 0, 20, 0.02)
        took = time.monotonic() - killed
        assert took < NOTICED_WITHIN, f"the dead client was noticed after {took:.1f}s (peer timeout 30s)"
        assert status(client)["total_cancelled"] == 5


def put_submit_and_die() -> None:
    """A task whose own client puts an object and queues a task, then its process is SIGKILLed."""
    inner = Client()
    inner.put(b"owned by this task's process")
    inner.options(capabilities="gpu=1").submit(time.sleep, 1)
    inner.sync(10)
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_client_of_a_sigkilled_task_process_is_dropped_at_once(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=1, scheduler_args=SLOW_TIMEOUT)
    with Client(cluster.address) as client:
        wait_workers(client, 1)
        future = client.options(max_retries=0).submit(put_submit_and_die)
        with pytest.raises(WorkerCrashedError):
            future.result(30)
        crashed = time.monotonic()
        wait_until(lambda: status(client)["clients"] == 1 and status(client)["tasks"] == 0, 20, 0.02)
        took = time.monotonic() - crashed
        assert took < NOTICED_WITHIN, f"the task's client was noticed gone after {took:.1f}s (peer timeout 30s)"


OWNER = """
import sys, time
from scaler.compat import ray
ray.init(address=sys.argv[1], namespace="owner-death")  # a namespace both jobs name, as in Ray

@ray.remote
class Sleeper:
    def nap(self, seconds):
        time.sleep(seconds)
        return seconds

sleeper = Sleeper.options(name="sleeper").remote()
ray.get(sleeper.nap.remote(0))
print("READY", flush=True)
time.sleep(600)
"""

CALLER = """
import sys, time
from scaler.compat import ray
ray.init(address=sys.argv[1], namespace="owner-death")
sleeper = ray.get_actor("sleeper")
assert ray.get(sleeper.nap.remote(0), timeout=30) == 0
running = sleeper.nap.remote(60)
queued = sleeper.nap.remote(0)
time.sleep(0.5)
print("CALLED", flush=True)
for ref in (running, queued):
    try:
        ray.get(ref, timeout=60)
        print("RETURNED", flush=True)
    except ray.exceptions.ActorDiedError:
        print("ActorDiedError", time.monotonic(), flush=True)
try:
    ray.get(sleeper.nap.remote(0), timeout=60)
    print("RETURNED", flush=True)
except ray.exceptions.ActorDiedError:
    print("ActorDiedError", time.monotonic(), flush=True)
"""


def test_calls_from_another_process_fail_at_once_when_the_actors_owner_is_sigkilled(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=1, scheduler_args=SLOW_TIMEOUT)
    with script(OWNER, cluster.address) as owner:
        read_line(owner, "READY")
        with script(CALLER, cluster.address) as caller:
            read_line(caller, "CALLED")
            killed = time.monotonic()
            owner.send_signal(signal.SIGKILL)
            for what in ("the running call", "the queued call", "a call made afterwards"):
                line = read_line(caller, "ActorDiedError")
                took = float(line.split()[1]) - killed
                assert took < NOTICED_WITHIN, f"{what} failed {took:.1f}s after the owner died (peer timeout 30s)"


def dial(address: str, identity: bytes) -> zmq.Socket[Any]:
    socket: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.IDENTITY, identity)
    socket.setsockopt(zmq.LINGER, 0)
    secret = find_secret(address, wait=5)
    if secret is not None:
        apply_secret(socket, secret)  # an authenticated peer: what is tested is its connection, not its key
    socket.connect(address)
    return socket


def ask_status(socket: zmq.Socket[Any]) -> type:
    """The type of the scheduler's answer to a StatusRequest (a StatusReply, or Refused if unknown)."""
    socket.send(encode([m.StatusRequest()]))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if socket.poll(int(max(0.0, deadline - time.monotonic()) * 1000)):
            for msg, _ in split_batch(socket.recv_multipart(copy=False)):
                if isinstance(msg, (m.StatusReply, m.Refused)):
                    return type(msg)
    raise AssertionError("no answer to StatusRequest")


def hello(socket: zmq.Socket[Any]) -> None:
    socket.send(encode([m.Hello("client", m.PROTOCOL_VERSION, "raw", pid=os.getpid(), domain=shm.host_domain())]))
    if not socket.poll(10_000):
        raise AssertionError("no Welcome")
    assert isinstance(split_batch(socket.recv_multipart(copy=False))[0][0], m.Welcome)


def test_a_peer_that_reconnects_under_its_identity_is_kept_and_one_that_does_not_is_dropped(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=1, scheduler_args=SLOW_TIMEOUT)
    with Client(cluster.address) as client:
        first = dial(cluster.address, b"c-reconnecting")
        hello(first)
        wait_until(lambda: status(client)["clients"] == 2)
        first.close(0)
        again = dial(cluster.address, b"c-reconnecting")  # a new connection, same identity, no new Hello
        assert ask_status(again) is m.StatusReply
        time.sleep(2.0)
        assert status(client)["clients"] == 2, "a peer that reconnected at once must not be dropped"
        assert ask_status(again) is m.StatusReply
        again.send(b"")  # an empty frame from a live peer says nothing about its connection
        time.sleep(2.0)
        assert ask_status(again) is m.StatusReply and status(client)["clients"] == 2

        closed = time.monotonic()
        again.close(0)
        wait_until(lambda: status(client)["clients"] == 1, 20, 0.02)
        took = time.monotonic() - closed
        assert took < NOTICED_WITHIN, f"a closed connection was noticed after {took:.1f}s (peer timeout 30s)"


def kill_my_worker() -> None:
    os.kill(os.getppid(), signal.SIGKILL)


NODE_DIES = """
import os, signal, sys
from scaler.compat import ray
ray.init(address=sys.argv[1])

@ray.remote(max_retries=0)
def kill_my_worker():
    os.kill(os.getppid(), signal.SIGKILL)

try:
    ray.get(kill_my_worker.remote(), timeout=60)
except ray.exceptions.NodeDiedError as exc:
    assert "kill_my_worker" in str(exc) and not isinstance(exc, ray.exceptions.WorkerCrashedError)
    print("NodeDiedError")
"""


def test_a_task_whose_worker_was_lost_fails_with_worker_lost_and_ray_calls_it_node_died(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=3)
    with Client(cluster.address) as client:
        wait_workers(client, 3)
        with pytest.raises(WorkerLostError, match="kill_my_worker") as caught:
            client.options(max_retries=0).submit(kill_my_worker).result(60)
        assert isinstance(caught.value, WorkerCrashedError), "core code catching WorkerCrashedError still does"
        with script(NODE_DIES, cluster.address) as driver:
            assert read_line(driver, "NodeDiedError") == "NodeDiedError"


def test_the_watch_drops_only_peers_without_a_connection() -> None:
    """A disconnect hint is checked against the ROUTER: a stale hint never drops a connected peer."""
    from scaler.scheduler.liveness import GRACE, ConnectionWatch

    router: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_HANDOVER, 1)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    watch = ConnectionWatch(router, set())
    try:
        peers = {name: dial(f"tcp://127.0.0.1:{port}", name) for name in (b"live", b"dying")}
        for socket in peers.values():
            socket.send(b"hello")
            identity, first = router.recv_multipart(copy=False)
            watch.joined(identity.bytes, first, time.monotonic())
        assert set(watch.fd_of) == {b"live", b"dying"} and len(set(watch.by_fd)) == 2

        now = time.monotonic()
        watch.suspect(b"live", now - GRACE)  # as a stale event for a reused descriptor would
        assert watch.gone(now) == [] and b"live" in watch.suspects, "a connected peer is kept, and asked again"
        assert watch.gone(now + GRACE) == [] and b"live" in watch.refresh and not watch.suspects

        peers[b"dying"].close(0)
        deadline = time.monotonic() + 10
        while b"dying" not in watch.suspects and time.monotonic() < deadline:
            if watch.monitor.poll(100):
                watch.drain_monitor(time.monotonic())
        assert b"dying" in watch.suspects, "a closed connection makes its peer suspect"
        assert watch.gone(time.monotonic()) == [], "not before its grace (it may reconnect)"
        time.sleep(GRACE)
        assert watch.gone(time.monotonic()) == [b"dying"]
        peers[b"live"].close(0)
    finally:
        watch.close()
        router.close(0)


MIRROR = """
import ast, sys
sys.modules["ray"] = None  # never import the installed Ray here
from scaler.compat.ray import exceptions as rx

for i, (scaler_type, _) in enumerate(rx.FROM_SCALER):
    for earlier, _ in rx.FROM_SCALER[:i]:
        assert not issubclass(scaler_type, earlier), f"{scaler_type.__name__} is shadowed by {earlier.__name__}"
if len(sys.argv) > 1:
    tree = ast.parse(open(sys.argv[1]).read())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            ours = getattr(rx, node.name, None)
            assert node.name in rx.__all__ and isinstance(ours, type), f"ray.exceptions.{node.name} is missing"
            for base in node.bases:
                name = base.id if isinstance(base, ast.Name) else ""
                expected = getattr(rx, name, None) or __builtins__.__dict__.get(name) if name else None
                if expected is not None:
                    assert issubclass(ours, expected), f"{node.name} must derive from {name}"
print("MIRROR OK")
"""


def test_the_exceptions_mirror_rays_classes_and_the_table_lists_subclasses_first() -> None:
    import importlib.util

    spec = importlib.util.find_spec("ray")  # finds the installed Ray's files without importing it
    source = [os.path.join(os.path.dirname(spec.origin), "exceptions.py")] if spec and spec.origin else []
    result = subprocess.run([sys.executable, "-c", MIRROR, *source], capture_output=True, text=True, env=_env())
    assert result.returncode == 0 and "MIRROR OK" in result.stdout, result.stderr[-3000:]
