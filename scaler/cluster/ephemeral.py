"""``with Cluster(...)``: a cluster for the length of one block, on whatever a deployment file names.

Entering starts ``scaler_cluster --config`` (the scheduler and the file's adapters, the one way a
deployment runs) as a child process tied to this one, and returns once every group's minimum of
workers has joined, or tears down and raises ``ClusterActivationError`` after
``activation_timeout_seconds``. Leaving, however the block ends (normally, by an exception, Ctrl-C
or SIGTERM), stops that process, whose adapters terminate their units, then lists each provider
again from here until it reports none of this cluster's units (bounded by
``teardown_timeout_seconds``), terminating any it still lists, and raises ``ClusterTeardownError``
naming those that remain. A SIGKILLed caller takes its ``scaler_cluster`` with it (parent-death
signal: the adapters still end their units); what a killed adapter leaves is its provider's
dead-man's switch and the next adapter's orphan reaping. With ``forward_logs=True`` the workers'
own output comes to this process's stdout and stderr, and every task submitted from the block
streams its output here, each line tagged with its task (``scaler.client.output``).

Each cluster has a cluster id of its own, so its units are told apart from every other deployment's;
a loopback scheduler address gets a free port. Without a deployment file the cluster is local: a
``local`` adapter with the shape given (``SimpleCluster``/``ClusterConfig``), or the embedded
default of one worker per CPU.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from scaler.client.output import STREAM_ENV
from scaler.cluster import deployment
from scaler.cluster.activation import Progress, progress
from scaler.cluster.nodes import ClusterConfig
from scaler.config.schema import Config
from scaler.config.write import dumps
from scaler.errors import ScalerError
from scaler.utility.security import secret_env

if TYPE_CHECKING:
    from scaler.cluster.head import RemoteHead

PARENT_ENV = "SCALER_CLUSTER_PARENT_PID"


class ClusterActivationError(ScalerError):
    """The cluster did not get every group's minimum of workers in time (it was torn down)."""


class ClusterTeardownError(ScalerError):
    """Units of the cluster were still listed by their provider when the teardown's time ran out."""


class Cluster:
    def __init__(
        self,
        shape: ClusterConfig | None = None,
        *,
        config: str | Path | None = None,
        provider: str | None = None,
        activation_timeout_seconds: float = 600.0,
        teardown_timeout_seconds: float = 120.0,
        forward_logs: bool = False,
        log_level: str = "WARNING",
    ) -> None:
        if activation_timeout_seconds <= 0 or teardown_timeout_seconds <= 0:
            raise ValueError("activation_timeout_seconds and teardown_timeout_seconds must be > 0")
        self.deployment: Config = deployment.effective(shape, config, provider, f"c{secrets.token_hex(6)}")
        self.activation_timeout = activation_timeout_seconds
        self.teardown_timeout = teardown_timeout_seconds
        self.forward_logs = forward_logs
        self.log_level = log_level
        self.address = ""  # what this process dials
        self.scheduler_address = ""  # where the scheduler is bound (on the head, with a [head])
        self.process: subprocess.Popen[bytes] | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._previous_sigterm: Any = None
        self._head: RemoteHead | None = None
        self._saved_env: dict[str, str | None] = {}  # what the block's variables replaced, restored on exit

    @property
    def cluster_id(self) -> str:
        return self.deployment.cluster_id

    def __enter__(self) -> Cluster:
        self._trap_sigterm()
        if self.forward_logs:  # clients made in the block stream their tasks' output here, tagged
            self._set_env({STREAM_ENV: "1"})
        try:
            self._start()
            self._activate()
        except BaseException:
            self._teardown(quiet=True)
            raise
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._teardown(quiet=error is not None)

    def __repr__(self) -> str:
        return f"Cluster({self.cluster_id} at {self.address or 'not started'})"

    # -- start ---------------------------------------------------------------------------------------

    def _start(self) -> None:
        if self.deployment.head is not None:
            self._start_on_head()
            return
        self._directory = tempfile.TemporaryDirectory(prefix="scaler-cluster-")
        path = Path(self._directory.name) / "deployment.toml"
        path.write_text(dumps(self.deployment))
        self._log = Path(self._directory.name) / "cluster.log"
        argv = [sys.executable, "-m", "scaler.cluster.main", "--config", str(path), "--log-level", self.log_level]
        env = dict(os.environ, **{PARENT_ENV: str(os.getpid())})
        stderr: IO[bytes] | None = None if self.forward_logs else self._log.open("ab")
        self.process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        if stderr is not None:
            stderr.close()
        stdout = self.process.stdout
        first = stdout.readline().decode(errors="replace") if stdout is not None else ""
        if not first.startswith("scaler cluster at "):
            self.process.wait(30)
            raise ClusterActivationError(f"the cluster did not start: {first.strip()} {self._log_tail()}".strip())
        self.address = self.scheduler_address = first.split()[3]
        threading.Thread(target=self._drain, args=(stdout,), daemon=True, name="cluster-stdout").start()

    def _start_on_head(self) -> None:
        from scaler.cluster.head import RemoteHead

        head = self._head = RemoteHead(self.deployment, self.log_level)
        self.scheduler_address = head.start(self.activation_timeout)
        self.address = head.forward()
        secret = head.secret()
        if secret is not None:  # for this process's clients, for the forwarded address only
            self._set_env(secret_env(self.address, secret))

    def _drain(self, stream: IO[bytes] | None) -> None:
        """The child's stdout (its workers' too, for local ones) to ours when forwarding, else away."""
        if stream is None:
            return
        for line in iter(stream.readline, b""):
            if self.forward_logs:
                sys.stdout.write(line.decode(errors="replace"))
                sys.stdout.flush()

    def _activate(self) -> None:
        from scaler.client.client import Client

        wanted = deployment.minimum_workers(self.deployment)
        deadline = time.monotonic() + self.activation_timeout
        live = sys.stderr.isatty()
        state = Progress((), "")
        with Client(self.address) as client:
            while True:
                if self._head is not None and self._head.channel.exit_status_ready():
                    raise ClusterActivationError(f"the cluster on the head exited: {self._head.tail()}")
                if self.process is not None and self.process.poll() is not None:
                    raise ClusterActivationError(f"the cluster exited ({self.process.returncode}) {self._log_tail()}")
                state = progress(client.scheduler_status(), wanted)
                if live:
                    sys.stderr.write(f"\r\x1b[Kscaler cluster {self.cluster_id}: {state.line()}")
                if state.ready:
                    break
                if time.monotonic() > deadline:
                    if live:
                        sys.stderr.write("\n")
                    raise ClusterActivationError(
                        f"cluster {self.cluster_id} did not activate within {self.activation_timeout:g}s: "
                        f"{state.line()}"
                    )
                time.sleep(0.25)
        if live:
            sys.stderr.write("\n")

    # -- stop ----------------------------------------------------------------------------------------

    def _teardown(self, quiet: bool) -> None:
        try:
            deadline = time.monotonic() + self.teardown_timeout
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(30)
            if self._head is not None:
                left = self._head.stop(max(1.0, deadline - time.monotonic()))
            elif self.address:
                left = deployment.ensure_gone(self.deployment, self.address, deadline)
            else:
                left = []
            self._head = None
            if left and not quiet:
                raise ClusterTeardownError(
                    f"cluster {self.cluster_id}: its providers still list {', '.join(left)} after "
                    f"{self.teardown_timeout:g}s (terminated again; check them by hand)"
                )
        finally:
            self._restore_sigterm()
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._saved_env = {}
            if self._directory is not None:
                self._directory.cleanup()
                self._directory = None

    def _set_env(self, values: dict[str, str]) -> None:
        for key in values:
            self._saved_env.setdefault(key, os.environ.get(key))
        os.environ.update(values)

    def _log_tail(self) -> str:
        try:
            text = self._log.read_text(errors="replace").strip()
        except (OSError, AttributeError):
            return ""
        return f"(its log: {text[-1500:]})" if text else ""

    def _trap_sigterm(self) -> None:
        """SIGTERM unwinds the block like Ctrl-C (so the teardown runs), in the main thread only."""
        if threading.current_thread() is not threading.main_thread():
            return

        def on_sigterm(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)

        self._previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm)

    def _restore_sigterm(self) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
