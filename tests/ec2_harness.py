"""EC2 on loopback for the EC2 provider's tests: a moto server, a VPC, an AMI, and a boot simulator.

``MotoEc2`` runs moto's server on 127.0.0.1 (a free port) and makes a VPC with two subnets and a
registered AMI in it. ``BootSimulator`` plays the instances' part: it polls ``DescribeInstances`` on
the moto server, and for each new instance carrying a ``scaler:unit`` tag runs that instance's user
data locally with bash, in its own process group, so a launched "instance" really starts workers that
dial back to a real scheduler on 127.0.0.1. When the instance is shutting down or terminated it kills
that process group; when the script ends by itself, the ``shutdown`` it calls (a stand-in on the
simulated instance's PATH) terminates the instance, as ``InstanceInitiatedShutdownBehavior=terminate``
makes EC2 do. Nothing here dials anything but 127.0.0.1: credentials are dummies, the instance
metadata service is disabled for boto3, and the moto-made public IPs are never used. The workers'
spot interruption watcher (which the user data points at 169.254.169.254) is pointed at a local
``MetadataService`` (``URL/<instance id>``: one endpoint per instance) or, without one, turned off.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3

from scaler.utility.net import free_port
from tests.metadata_server import MetadataService

REGION = "us-east-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",  # never dial 169.254.169.254 looking for credentials
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}

SHUTDOWN = """#!{python}
# A simulated instance's shutdown: EC2 ends the instance as its InstanceInitiatedShutdownBehavior says.
import os
import boto3
client = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
instance = os.environ["SCALER_SIMULATED_INSTANCE"]
behaviour = client.describe_instance_attribute(InstanceId=instance, Attribute="instanceInitiatedShutdownBehavior")
if behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate":
    client.terminate_instances(InstanceIds=[instance])
else:
    client.stop_instances(InstanceIds=[instance])
"""


class MotoEc2:
    """A moto server on 127.0.0.1 with a VPC, two subnets and an AMI; ``client()`` talks to it."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.port}"
        ec2 = self.client()
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
                "SubnetId"
            ]
            for n, zone in ((1, "a"), (2, "b"))
        ]
        image = ec2.register_image(
            Name="scaler-worker", Architecture="x86_64", RootDeviceName="/dev/xvda", VirtualizationType="hvm"
        )
        self.image_id: str = image["ImageId"]

    def client(self, service: str = "ec2") -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=REGION)

    def stop(self) -> None:
        self.server.stop()


class BootSimulator:
    """Runs each new instance's user data as a local process group; ends it with the instance."""

    def __init__(
        self, moto: MotoEc2, directory: Path, interval: float = 0.2, metadata: MetadataService | None = None
    ) -> None:
        self.moto = moto
        self.metadata = metadata
        self.client = moto.client()
        self.directory = directory
        self.interval = interval
        self.bin = directory / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self._tool("shutdown", SHUTDOWN.format(python=sys.executable))
        self._tool("python3", f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # the AMI's python3 has scaler
        self.booted: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: dict[str, float] = {}
        self.gone: set[str] = set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="boot-simulator", daemon=True)
        self.thread.start()

    def _tool(self, name: str, text: str) -> None:
        path = self.bin / name
        path.write_text(text)
        path.chmod(0o755)

    def _states(self) -> dict[str, str]:
        found: dict[str, str] = {}
        filters = [{"Name": "tag-key", "Values": ["scaler:unit"]}]
        for page in self.client.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    found[instance["InstanceId"]] = instance["State"]["Name"]
        return found

    def _boot(self, instance_id: str) -> None:
        attribute = self.client.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        script = self.directory / f"{instance_id}.sh"
        script.write_bytes(base64.b64decode(attribute.get("UserData", {}).get("Value", "")))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCALER_")}
        env.update(AWS_ENV, AWS_ENDPOINT_URL=self.moto.url, SCALER_SIMULATED_INSTANCE=instance_id)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["SCALER_INSTANCE_METADATA"] = f"{self.metadata.url}/{instance_id}" if self.metadata else ""
        with open(self.directory / f"{instance_id}.log", "wb") as log:
            self.booted[instance_id] = subprocess.Popen(
                ["bash", str(script)], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

    def _kill(self, instance_id: str) -> None:
        """SIGTERM to the instance's process group, SIGKILL after 5 s, until the group is gone."""
        if instance_id in self.gone:
            return
        self.booted[instance_id].poll()  # reap the script: only live members keep the group
        first = instance_id not in self.killed
        late = time.monotonic() - self.killed.setdefault(instance_id, time.monotonic()) > 5.0
        if first or late:
            try:
                os.killpg(self.booted[instance_id].pid, signal.SIGKILL if late else signal.SIGTERM)
            except ProcessLookupError:
                self.gone.add(instance_id)

    def _loop(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                states = self._states()
            except Exception:  # the server is going away at the end of the module
                continue
            for instance_id, state in states.items():
                if state in ("pending", "running") and instance_id not in self.booted:
                    self._boot(instance_id)
            for instance_id in list(self.booted):
                if states.get(instance_id, "terminated") not in ("pending", "running"):
                    self._kill(instance_id)

    def log(self, instance_id: str) -> str:
        path = self.directory / f"{instance_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)
        for process in self.booted.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextlib.contextmanager
def moto_session() -> Iterator[MotoEc2]:
    """A moto server with this process's AWS environment pointed at it; the environment restored after."""
    saved = {key: os.environ.get(key) for key in AWS_ENV}
    os.environ.update(AWS_ENV)
    server = MotoEc2()
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def simulated_instances(moto: MotoEc2, directory: Path) -> Iterator[BootSimulator]:
    """A boot simulator for ``moto``'s instances, each with its own metadata endpoint on loopback."""
    metadata = MetadataService()
    simulator = BootSimulator(moto, directory, metadata=metadata)
    try:
        yield simulator
    finally:
        simulator.stop()
        metadata.stop()
