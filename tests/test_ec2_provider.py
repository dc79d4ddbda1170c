"""The EC2 provider against a moto server on 127.0.0.1, with a boot simulator that runs each instance's user data.

Both conformance suites run unchanged on ``Ec2Provider``: launched instances really start workers
(the simulator runs their user data here) that dial back to a real scheduler and run tasks. Then the
EC2-specific parts: the fallback ladder under injected ``ClientError`` codes (botocore event hooks on
``RunInstances``), idempotency by the request-id tag across provider objects (moto ignores
``ClientToken``), orphan reaping that never touches another cluster's instances, and the user data
(no secret in it; CURVE keys read from SSM at boot; the instance ends when its workers do).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from scaler.adapters.ec2 import bootstrap
from scaler.adapters.ec2.provider import Ec2Provider
from scaler.adapters.ec2.spec import Ec2Group, Ec2Options
from scaler.adapters.errors import (
    AuthError,
    CapacityError,
    ConfigurationError,
    PartialLaunchError,
    QuotaError,
    ThrottledError,
)
from scaler.adapters.identity import TAG_GROUP, Identity
from scaler.adapters.launch import CURVE_KEYS_ENV, Credentials, LaunchBuilder, WorkerLaunch
from scaler.adapters.provider import SyncProvider, WorkerGroup
from scaler.adapters.runner import AdapterRunner, RunnerConfig
from scaler.adapters.spec import ProviderContext
from scaler.adapters.testing import GROUP, ProviderConformance, RunnerConformance, eventually_listed

from scaler.protocol import messages as m
from scaler.utility.net import free_port
from scaler.utility.security import SECRET_ENV
from tests.conftest import wait_until
from tests.ec2_harness import BootSimulator, MotoEc2, moto_session, simulated_instances

WORKER_ARGS = ("--death-timeout", "20")
ProviderMaker = Callable[..., Ec2Provider]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoEc2]:
    with moto_session() as server:
        yield server


@pytest.fixture(scope="module")
def simulator(moto: MotoEc2, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BootSimulator]:
    with simulated_instances(moto, tmp_path_factory.mktemp("instances")) as simulator:
        yield simulator


@pytest.fixture
def scheduler_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def settings(moto: MotoEc2, **overrides: Any) -> Ec2Group:
    values: dict[str, Any] = {
        "instance_types": ("t3.micro",),
        "subnets": tuple(moto.subnets),
        "image_id": moto.image_id,
    }
    return Ec2Group(**{**values, **overrides})


@pytest.fixture
def ec2_factory(
    moto: MotoEc2, simulator: BootSimulator, scheduler_address: str, tmp_path: Path
) -> Iterator[ProviderMaker]:
    made: list[Ec2Provider] = []

    def make(cluster_id: str, group: Ec2Group | None = None, **options: Any) -> Ec2Provider:
        identity = Identity(cluster_id, "ec2")
        launches = LaunchBuilder(identity, scheduler_address)
        context = ProviderContext(identity, tmp_path / "state", scheduler_address, launches)
        shape = group or settings(moto)
        values: dict[str, Any] = {"endpoint_url": moto.url, "region": "us-east-1", "worker_args": WORKER_ARGS}
        values["groups"] = {"conformance": shape, "slow": shape, "other": settings(moto)}
        provider = Ec2Provider(context, Ec2Options(**{**values, **options}))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.terminate([u.unit_id for u in provider.list_units()])


class TestEc2Provider(ProviderConformance, RunnerConformance):
    @pytest.fixture
    def provider_factory(self, ec2_factory: ProviderMaker) -> Callable[[str], SyncProvider]:
        return ec2_factory

    @pytest.fixture
    def provider(self, ec2_factory: ProviderMaker, cluster_id: str) -> SyncProvider:
        return ec2_factory(cluster_id)

    @pytest.fixture
    def broken_provider(self, ec2_factory: ProviderMaker, moto: MotoEc2, cluster_id: str) -> SyncProvider:
        return ec2_factory(cluster_id, settings(moto, subnets=("subnet-0deadbeef0000000",)))  # a subnet none has


# -- fault injection: the ladder under the codes EC2 answers -----------------------------------------------


def inject(provider: Ec2Provider, code: str, when: Callable[[dict[str, Any]], bool] = lambda p: True) -> list[str]:
    """Make ``provider``'s ``RunInstances`` fail with ``code`` when ``when(params)``; returns the subnets tried."""
    tried: list[str] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        tried.append(str(params.get("SubnetId", "")))
        if when(params):
            raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, "RunInstances")

    provider.client.meta.events.register("provide-client-params.ec2.RunInstances", hook)
    return tried


def group_of(params: dict[str, Any]) -> str:
    """The ``scaler:group`` tag a ``RunInstances`` call gives its instance."""
    tags = {t["Key"]: t["Value"] for t in params["TagSpecifications"][0]["Tags"]}
    return str(tags[TAG_GROUP])


def cluster() -> str:
    return f"ec2t{secrets.token_hex(4)}"


def test_capacity_in_the_first_subnet_moves_to_the_next_cell_and_cools_it_down(
    ec2_factory: ProviderMaker, moto: MotoEc2
) -> None:
    provider = ec2_factory(cluster())
    first, second = moto.subnets
    tried = inject(provider, "InsufficientInstanceCapacity", lambda params: params.get("SubnetId") == first)
    units = provider.launch(GROUP, 2, "cap-1")
    assert len(units) == 2 and tried == [first, second, second], "the cooled cell is skipped for the second unit"
    listed = {u.unit_id: u for u in provider.list_units()}
    assert {listed[u.unit_id].details["subnet"] for u in units} == {second}
    assert provider.launch(GROUP, 1, "cap-2") and tried[-1] == second, "still cooling down"


def test_spot_then_on_demand_tries_every_spot_cell_first(ec2_factory: ProviderMaker, moto: MotoEc2) -> None:
    provider = ec2_factory(cluster(), settings(moto, market="spot-then-on-demand"))
    tried = inject(provider, "InsufficientInstanceCapacity", lambda params: "InstanceMarketOptions" in params)
    (unit,) = provider.launch(GROUP, 1, "spot-1")
    assert len(tried) == 3 and unit.details["cell"].endswith("/on-demand")
    assert {u.details["market"] for u in provider.list_units()} == {"on-demand"}


def test_no_capacity_anywhere_is_a_capacity_error(ec2_factory: ProviderMaker) -> None:
    provider = ec2_factory(cluster())
    inject(provider, "InsufficientInstanceCapacity")
    with pytest.raises(CapacityError):
        provider.launch(GROUP, 1, "cap-none")
    assert not provider.list_units()


def test_a_quota_reached_midway_is_a_partial_launch_with_its_cause(ec2_factory: ProviderMaker) -> None:
    provider = ec2_factory(cluster())
    calls: list[int] = []
    inject(provider, "VcpuLimitExceeded", lambda params: bool(calls.append(1)) or len(calls) > 1)
    with pytest.raises(PartialLaunchError) as info:
        provider.launch(GROUP, 3, "quota-1")
    assert len(info.value.units) == 1 and isinstance(info.value.cause, QuotaError) and len(calls) == 2
    assert [u.unit_id for u in provider.list_units()] == [info.value.units[0].unit_id]


@pytest.mark.parametrize(
    ("code", "ours", "stopped"),
    [
        ("VcpuLimitExceeded", QuotaError, False),
        ("RequestLimitExceeded", ThrottledError, False),
        ("UnauthorizedOperation", AuthError, True),
    ],
)
def test_the_runner_backs_off_or_stops_the_group_while_another_group_launches(
    ec2_factory: ProviderMaker, scheduler_address: str, code: str, ours: type[Exception], stopped: bool
) -> None:
    provider = ec2_factory(cluster())
    with pytest.raises(ours):
        failing = ec2_factory(cluster())
        inject(failing, code)
        failing.launch(GROUP, 1, "direct")
    tried = inject(provider, code, lambda params: group_of(params) != "other")
    other = WorkerGroup("other", "cpu=1", workers_per_unit=1, min_units=0, max_units=2)
    config = RunnerConfig("ec2", scheduler_address, (GROUP, other), backoff_base=60.0, backoff_max=60.0)

    async def body() -> None:
        runner = AdapterRunner(provider, config)
        for attempt in range(3):
            runner.apply(m.ScaleCommand(f"f{attempt}", {GROUP.name: 1, other.name: 1 if attempt == 0 else 0}))
            await runner.settle()
        assert [u.group for u in runner.table.active()] == ["other"], "the other group still launches"
        assert GROUP.name in runner.health.failing(time.monotonic())
        assert (GROUP.name in runner.health.stopped) is stopped
        await runner.terminate_all("test over")

    asyncio.run(body())
    assert len(tried) == 2, "one failed call for the failing group, never retried at once; one for the other"


# -- idempotency and orphans -------------------------------------------------------------------------


def test_a_request_launches_once_across_provider_objects(ec2_factory: ProviderMaker, moto: MotoEc2) -> None:
    cluster_id = cluster()
    first = ec2_factory(cluster_id).launch(GROUP, 2, "once")
    again = ec2_factory(cluster_id).launch(GROUP, 2, "once")  # a restarted adapter, the same request
    assert {u.unit_id for u in again} == {u.unit_id for u in first}
    assert len(ec2_factory(cluster_id).list_units()) == 2
    ec2_factory(cluster_id).terminate([first[0].unit_id])
    wait_until(lambda: len(ec2_factory(cluster_id).list_units()) == 1)
    assert len(ec2_factory(cluster_id).launch(GROUP, 2, "once")) == 1, "a terminated unit of the request is not redone"


def test_a_fresh_runner_reaps_an_untracked_instance_and_never_another_clusters(
    ec2_factory: ProviderMaker, moto: MotoEc2, scheduler_address: str
) -> None:
    mine, theirs = ec2_factory(cluster()), ec2_factory(cluster())
    orphan = mine.launch(GROUP, 1, "left-behind")[0].unit_id  # its launcher is gone: nobody tracks it
    kept = theirs.launch(GROUP, 1, "theirs")[0].unit_id
    untagged = moto.client().run_instances(ImageId=moto.image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]

    async def body() -> None:
        runner = AdapterRunner(ec2_factory(mine.identity.cluster_id), RunnerConfig("ec2", scheduler_address, (GROUP,)))
        await runner.reconcile(starting=True)
        await runner.settle()
        await eventually_listed(mine, {orphan}, present=False)

    asyncio.run(body())
    assert [u.unit_id for u in theirs.list_units()] == [kept]
    described = moto.client().describe_instances(InstanceIds=[untagged])["Reservations"][0]["Instances"][0]
    assert described["State"]["Name"] == "running", "an instance without our tags is never touched"
    moto.client().terminate_instances(InstanceIds=[untagged])


# -- the instance's side: user data, the dead-man's switch, CURVE keys from SSM -------------------------


def test_an_instance_ends_when_its_workers_do(ec2_factory: ProviderMaker, simulator: BootSimulator) -> None:
    provider = ec2_factory(cluster(), worker_args=("--death-timeout", "2"))  # no scheduler: the worker gives up
    (unit,) = provider.launch(GROUP, 1, "deadman")
    wait_until(lambda: unit.details["instance_id"] in simulator.booted, timeout=30)
    wait_until(lambda: not provider.list_units(), timeout=60)


def test_a_failing_setup_ends_the_instance_at_once(ec2_factory: ProviderMaker, simulator: BootSimulator) -> None:
    provider = ec2_factory(cluster(), setup="false", worker_args=("--death-timeout", "300"))
    (unit,) = provider.launch(GROUP, 1, "bad-setup")
    wait_until(lambda: unit.details["instance_id"] in simulator.booted, timeout=30)
    # Started workers (no scheduler listens) would keep the instance up for their 300 s death timeout.
    wait_until(lambda: not provider.list_units(), timeout=60)


def test_user_data_holds_no_secret_and_reads_curve_keys_from_ssm(
    ec2_factory: ProviderMaker, moto: MotoEc2, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    secret = secrets.token_hex(20)
    (keys / "client.key_secret").write_text(f"secret-key = {secret}\n")
    (keys / "server.key").write_text("public-key = server\n")
    ssm = moto.client("ssm")
    for name in ("client.key_secret", "server.key"):
        ssm.put_parameter(Name=f"/scaler/test/{name}", Value=(keys / name).read_text(), Type="SecureString")
    provider = ec2_factory(cluster(), curve_keys_parameter="/scaler/test")
    identity = provider.identity
    provider.context = ProviderContext(
        identity, tmp_path, "tcp://127.0.0.1:1", LaunchBuilder(identity, "tcp://127.0.0.1:1", keys)
    )
    launch = provider.context.launches.build(GROUP, "u1", "r1")
    text = bootstrap.render(launch, provider.options)
    assert secret not in text and "trap 'shutdown -h now' EXIT" in text and "scaler.worker.main" in text
    # Run only the key-fetching part of the script, as the instance would at boot.
    start = text.index('SCALER_KEYS_DIR="$(')
    end = text.index("\n", text.index("export SCALER_CURVE_KEYS="))
    script = text[start:end].replace("/run/scaler-keys.", f"{tmp_path}/k.") + '\necho "$SCALER_CURVE_KEYS"\n'
    env = dict(os.environ, AWS_ENDPOINT_URL=moto.url)
    out = subprocess.run(["bash", "-c", script.replace("python3", sys.executable)], env=env, capture_output=True)
    assert out.returncode == 0, out.stderr
    placed = Path(out.stdout.decode().strip())
    assert (placed / "client.key_secret").read_text() == (keys / "client.key_secret").read_text()
    assert oct(placed.stat().st_mode & 0o777) == "0o700"
    assert oct((placed / "client.key_secret").stat().st_mode & 0o777) == "0o600"


# -- the deployment path: configs checked, and scaler_cluster running an ec2 adapter ------------------------

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def deployment(tmp_path: Path, port: int, moto: MotoEc2, extra: str = "") -> Path:
    config = tmp_path / "ec2.toml"
    config.write_text(f"""
cluster_id = "ec2e{port}"
[scheduler]
address = "tcp://127.0.0.1:{port}"
[[adapter]]
provider = "ec2"
state_dir = "{tmp_path / "state"}"
reconcile_interval = 0.5
[adapter.options]
region = "us-east-1"
endpoint_url = "{moto.url}"
worker_args = ["--death-timeout", "20"]
{extra}
[adapter.options.groups.cpu]
instance_types = ["t3.micro"]
subnets = {list(moto.subnets)!r}
image_id = "{moto.image_id}"
[[adapter.group]]
name = "cpu"
min_units = 1
max_units = 1
""")
    return config


def test_the_example_config_loads_and_a_misspelt_option_is_refused_by_key_path(tmp_path: Path) -> None:
    from scaler.config import ConfigError, load_config

    assert load_config(CONFIGS / "ec2.toml").adapter[0].provider == "ec2"
    bad = tmp_path / "bad.toml"
    bad.write_text((CONFIGS / "ec2.toml").read_text().replace("instance_types =", "instance_type ="))
    with pytest.raises(ConfigError, match=r"\$\.adapter\[0\]\.options\.groups\[\.\.\.\]\.instance_type: unknown field"):
        load_config(bad)
    taken = 'tags = { "scaler:unit" = "x" }'
    bad.write_text((CONFIGS / "ec2.toml").read_text().replace('tags = { team = "research" }', taken))
    with pytest.raises(ConfigError, match="the adapter writes them"):
        load_config(bad)


def test_scaler_cluster_runs_workers_on_simulated_instances(
    moto: MotoEc2, simulator: BootSimulator, tmp_path: Path
) -> None:
    from scaler import Client

    port = free_port()
    config = deployment(tmp_path, port, moto)
    argv = [sys.executable, "-m", "scaler.cluster.main", "--config", str(config)]
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING")
    cluster = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    ours = [{"Name": "tag:scaler:cluster", "Values": [f"ec2e{port}"]}]

    def states() -> list[str]:
        pages = moto.client().describe_instances(Filters=ours)["Reservations"]
        return [i["State"]["Name"] for r in pages for i in r["Instances"]]

    try:
        assert cluster.stdout is not None and "scaler cluster at" in cluster.stdout.readline()
        with Client(f"tcp://127.0.0.1:{port}") as client:
            assert client.submit(pow, 3, 4).result(90) == 81
        assert states() == ["running"]
    finally:
        cluster.terminate()
        cluster.wait(60)
    wait_until(lambda: states() == ["terminated"], timeout=30)


def test_a_spot_interruption_notice_launches_the_replacement_instance_before_the_first_goes(
    moto: MotoEc2, simulator: BootSimulator, tmp_path: Path
) -> None:
    from scaler import Client

    port = free_port()
    config = deployment(tmp_path, port, moto)  # min_units = max_units = 1
    config.write_text(config.read_text().replace('"20"]', '"20", "--metadata-interval", "0.3"]'))
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "scaler.cluster.main", "--config", str(config)],
        env=dict(os.environ, SCALER_LOG_LEVEL="WARNING"),
        stdout=subprocess.PIPE,
        text=True,
    )
    ours = [{"Name": "tag:scaler:cluster", "Values": [f"ec2e{port}"]}]

    def instances() -> dict[str, str]:
        pages = moto.client().describe_instances(Filters=ours)["Reservations"]
        return {i["InstanceId"]: i["State"]["Name"] for r in pages for i in r["Instances"]}

    try:
        assert scheduler.stdout is not None and "scaler cluster at" in scheduler.stdout.readline()
        with Client(f"tcp://127.0.0.1:{port}") as client:
            assert client.submit(pow, 3, 4).result(90) == 81
            (first,) = instances()
            busy = client.submit(time.sleep, 8.0)  # keeps the noticed instance draining, not gone at once
            wait_until(lambda: client.scheduler_status().workers[0]["assigned"] == 1, 30)
            assert simulator.metadata is not None
            simulator.metadata.interrupt(seconds=120.0, instance=first)
            # max_units = 1, yet the replacement is launched while the noticed instance still runs.
            wait_until(lambda: sorted(instances().values()) == ["running", "running"], 30)
            wait_until(lambda: client.scheduler_status().status["workers"] == 2, 60)
            text = "\n".join(client.scheduler_status().decisions)
            assert "spot interruption notice on worker" in text, text
            assert client.submit(pow, 2, 5).result(60) == 32
            assert busy.result(60) is None, "its running task finished there"
            wait_until(lambda: instances().get(first) == "terminated", 60)  # then it is terminated, drained
            assert len([s for s in instances().values() if s == "running"]) == 1
    finally:
        scheduler.terminate()
        scheduler.wait(60)
    wait_until(lambda: all(s == "terminated" for s in instances().values()), timeout=30)


def test_user_data_points_workers_at_the_metadata_service_unless_told_otherwise() -> None:
    launch = WorkerLaunch("tcp://10.0.0.1:6378", "cpu=1", "u1")
    text = bootstrap.render(launch, Ec2Options(groups={}))
    assert 'SCALER_INSTANCE_METADATA="${SCALER_INSTANCE_METADATA-http://169.254.169.254}"' in text


def test_a_cluster_secret_is_never_rendered_into_user_data() -> None:
    secret = secrets.token_hex(16)
    launch = WorkerLaunch("tcp://10.0.0.1:6378", "cpu=1", "u1", credentials=Credentials(secret.encode(), "tcp://x"))
    text = bootstrap.render(launch, Ec2Options(groups={}))
    assert secret not in text and SECRET_ENV not in text and CURVE_KEYS_ENV not in text


# -- workers sized to their instance type (DescribeInstanceTypes) ---------------------------------------

GIB = 1024**3


def test_workers_are_sized_to_the_instance_type_and_configured_capabilities_win(
    ec2_factory: ProviderMaker, moto: MotoEc2
) -> None:
    provider = ec2_factory(cluster(), settings(moto, instance_types=("m5.xlarge",)))  # other: t3.micro
    configured = (
        WorkerGroup("conformance", "", workers_per_unit=1, max_units=2),
        WorkerGroup("other", "cpu=3,fast", workers_per_unit=2, max_units=2),
        WorkerGroup("unlisted", "cpu=2", max_units=1),  # no launch settings: left as configured
    )
    sized = {g.name: g for g in provider.groups(configured)}
    assert sized["conformance"].capabilities == f"cpu=4,memory={16 * GIB},instance_type:m5.xlarge"
    assert sized["other"].capabilities == f"cpu=3,memory={GIB // 2},fast,instance_type:t3.micro"
    assert sized["unlisted"] == configured[2]
    assert [g.name for g in provider.groups(configured)] == ["conformance", "other", "unlisted"]


def test_several_instance_types_give_the_smallest_of_each_and_gpus_count(
    ec2_factory: ProviderMaker, moto: MotoEc2
) -> None:
    provider = ec2_factory(cluster(), settings(moto, instance_types=("m5.xlarge", "c5.large")))
    (mixed,) = provider.groups((WorkerGroup("conformance", ""),))
    assert mixed.capabilities == f"cpu=2,memory={4 * GIB}", "no instance_type label with several types"
    gpu = ec2_factory(cluster(), settings(moto, instance_types=("g4dn.xlarge",)))
    (sized,) = gpu.groups((WorkerGroup("conformance", ""),))
    assert sized.capabilities == f"cpu=4,gpu=1,memory={16 * GIB},instance_type:g4dn.xlarge"


def test_the_runner_reports_and_launches_the_sized_groups(
    ec2_factory: ProviderMaker, moto: MotoEc2, scheduler_address: str
) -> None:
    provider = ec2_factory(cluster(), settings(moto, instance_types=("m5.xlarge",)))
    config = RunnerConfig("ec2", scheduler_address, (WorkerGroup("conformance", "", max_units=1),))

    async def body() -> None:
        runner = AdapterRunner(provider, config)
        assert runner._state().groups[0].capabilities == "cpu=1", "before sizing: the default"
        assert await runner.size_groups()
        (reported,) = runner._state().groups
        assert reported.capabilities == f"cpu=4,memory={16 * GIB},instance_type:m5.xlarge"
        runner.apply(m.ScaleCommand("sized", {"conformance": 1}))
        await runner.settle()
        (unit,) = runner.table.active()
        (listed,) = [u for u in provider.list_units() if u.unit_id == unit.unit_id]
        data = moto.client().describe_instance_attribute(InstanceId=listed.details["instance_id"], Attribute="userData")
        text = base64.b64decode(data["UserData"]["Value"]).decode()
        assert f"cpu=4,memory={16 * GIB},instance_type:m5.xlarge" in text, "the workers advertise the sized shape"
        await runner.terminate_all("test over")

    asyncio.run(body())


def test_an_instance_type_ec2_does_not_know_stops_the_adapter(
    ec2_factory: ProviderMaker, moto: MotoEc2, scheduler_address: str
) -> None:
    provider = ec2_factory(cluster(), settings(moto, instance_types=("zz9.huge",)))
    runner = AdapterRunner(provider, RunnerConfig("ec2", scheduler_address, (GROUP,)))
    assert asyncio.run(runner.size_groups()) is False and runner.exit_code == 1


def test_workers_per_unit_auto_is_one_worker_of_the_instance_shape_from_the_config(
    moto: MotoEc2, tmp_path: Path
) -> None:
    from scaler.adapters.cli import build_runners

    from scaler.config import load_config

    config = deployment(tmp_path, free_port(), moto, extra="")
    text = config.read_text().replace('name = "cpu"\n', 'name = "cpu"\nworkers_per_unit = "auto"\n')
    config.write_text(text.replace('"t3.micro"', '"m5.large"'))
    (runner,) = build_runners(load_config(config), "ec2", None)
    assert asyncio.run(runner.size_groups())
    (group,) = runner._state().groups
    assert (group.workers_per_unit, group.capabilities) == (1, f"cpu=2,memory={8 * GIB},instance_type:m5.large")


def test_pick_smallest_fitting_launches_the_smallest_type_that_holds_what_the_group_asks(
    ec2_factory: ProviderMaker, moto: MotoEc2
) -> None:
    listed = ("m5.xlarge", "t3.micro", "m5.large")
    provider = ec2_factory(cluster(), settings(moto, instance_types=listed, pick="smallest-fitting"))
    (group,) = provider.groups((WorkerGroup("conformance", f"cpu=2,memory={4 * GIB}", max_units=1),))
    assert provider.types["conformance"] == ("m5.large", "m5.xlarge"), "t3.micro has 1 GiB: dropped"
    assert group.capabilities == f"cpu=2,memory={4 * GIB}"
    (unit,) = provider.launch(group, 1, "pick")
    described = moto.client().describe_instances(InstanceIds=[unit.details["instance_id"]])
    assert described["Reservations"][0]["Instances"][0]["InstanceType"] == "m5.large"
    too_big = WorkerGroup("conformance", "cpu=64", max_units=1)
    with pytest.raises(ConfigurationError, match=r"none of m5\.xlarge, t3\.micro, m5\.large holds 1 worker"):
        ec2_factory(cluster(), settings(moto, instance_types=listed, pick="smallest-fitting")).groups((too_big,))
