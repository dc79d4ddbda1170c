"""Units as EC2 instances (DESIGN §4): ``Ec2Provider``, a ``SyncProvider`` over boto3's blocking client.

``launch`` is idempotent twice over. A unit's id is derived from the cluster, the adapter, the
request id and the unit's index, and each ``RunInstances`` carries a ``ClientToken`` derived from that
and the ladder cell, so a retried call returns the same instance at AWS. And before launching, the
request's instances are looked up by their ``scaler:request`` tag (across provider objects and
restarts, and on backends that ignore ``ClientToken``, as moto does): indexes already launched are
not launched again. ``terminate`` is one batched ``TerminateInstances``; ``list_units`` is ``listing``;
``groups`` (the runner's optional hook) sizes each group's workers to its instance type (``shapes``).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import msgspec
from scaler.adapters.ec2 import bootstrap, listing, shapes
from scaler.adapters.ec2.errors import ERRORS
from scaler.adapters.ec2.ladder import Cell, Ladder, cells
from scaler.adapters.ec2.spec import Ec2Group, Ec2Options
from scaler.adapters.errors import ConfigurationError, ErrorTable, classify
from scaler.adapters.identity import TAG_UNIT
from scaler.adapters.provider import SyncProvider, Unit, UnitState, WorkerGroup
from scaler.adapters.spec import ProviderContext

TERMINATE_BATCH = 1000  # instance ids per TerminateInstances call


def make_client(options: Ec2Options) -> Any:
    """boto3's EC2 client for the options' region and endpoint; its own retries are few and its timeouts
    shorter than a provider call's, so throttling reaches the runner's backoff rather than hiding in a call."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=30)
    region, endpoint = options.region or None, options.endpoint_url or None
    try:
        return boto3.client("ec2", region_name=region, endpoint_url=endpoint, config=config)
    except NoRegionError:
        raise ValueError("the ec2 adapter needs a region: set options.region (or AWS_REGION)") from None


def digest(*parts: str, length: int) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


class Ec2Provider(SyncProvider):
    errors: ErrorTable = ERRORS

    def __init__(self, context: ProviderContext, options: Ec2Options, client: Any = None) -> None:
        self.context, self.options = context, options
        self.identity = context.identity
        self.client = client if client is not None else make_client(options)
        self.ladder = Ladder(options.cooldown)
        self.types: dict[str, tuple[str, ...]] = {}  # group -> its instance types as picked (pick = smallest-fitting)

    def groups(self, configured: tuple[WorkerGroup, ...]) -> tuple[WorkerGroup, ...]:
        """The groups with their workers' capabilities from their instance types (``shapes``): one
        ``DescribeInstanceTypes``, called once by the runner before its first report. A group with
        ``pick = "smallest-fitting"`` keeps only the types that hold what it asks, smallest first (none is a
        configuration error). A group whose type comes from a launch template, or that has no launch
        settings, keeps its configured capabilities."""
        settings = self.options.groups
        types = {g.name: settings[g.name].instance_types for g in configured if g.name in settings}
        known = shapes.describe(self.client, [t for listed in types.values() for t in listed])
        sized = []
        for group in configured:
            listed = [known[t] for t in types.get(group.name, ())]
            if listed and settings[group.name].pick == "smallest-fitting":
                listed = shapes.smallest_fitting(listed, group.workers_per_unit, group.capabilities)
                if not listed:
                    raise ConfigurationError(
                        f"group {group.name!r}: none of {', '.join(types[group.name])} holds "
                        f"{group.workers_per_unit} worker(s) of {group.capabilities}"
                    )
                self.types[group.name] = tuple(s.instance_type for s in listed)
            if listed:
                derived = shapes.capabilities(listed, group.workers_per_unit, group.capabilities)
                group = msgspec.structs.replace(group, capabilities=derived)
            sized.append(group)
        return tuple(sized)

    def unit_id(self, group: str, request_id: str, index: int) -> str:
        """Unit ``index`` of request ``request_id``: the same id whenever the request is launched again."""
        cluster, adapter = self.identity.cluster_id, self.identity.adapter
        return f"{cluster}.{adapter}.{group}.{digest(cluster, adapter, group, request_id, str(index), length=8)}"

    def launch(self, group: WorkerGroup, count: int, request_id: str) -> list[Unit]:
        settings = self.options.groups.get(group.name)
        if settings is None:
            raise ConfigurationError(f"group {group.name!r} has no launch settings in the ec2 options' groups")
        seen = [listing.unit_of(i) for i in listing.instances(self.client, self.identity, request_id, everything=True)]
        found = {unit.unit_id: unit for unit in seen if unit is not None}
        wanted = [self.unit_id(group.name, request_id, index) for index in range(count)]
        missing = [unit_id for unit_id in wanted if unit_id not in found]
        live = [unit for unit in found.values() if unit.state is not UnitState.TERMINATED]

        if group.name in self.types:
            settings = msgspec.structs.replace(settings, instance_types=self.types[group.name])
        chosen = settings

        def run(cell: Cell, unit_id: str) -> Unit:
            return self.run_instance(chosen, cell, group, unit_id, request_id)

        return self.ladder.launch(cells(settings), missing, run, lambda exc: classify(self.errors, exc), live)

    def run_instance(self, settings: Ec2Group, cell: Cell, group: WorkerGroup, unit_id: str, request_id: str) -> Unit:
        launch = self.context.launches.build(group, unit_id, request_id, self.options.worker_args)
        tags = {**settings.tags, "Name": unit_id, **launch.tags}
        token = digest(self.identity.cluster_id, self.identity.adapter, request_id, unit_id, str(cell), length=64)
        arguments: dict[str, Any] = {
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": token,
            "UserData": bootstrap.render(launch, self.options),
            "InstanceInitiatedShutdownBehavior": "terminate",
            "MetadataOptions": {"HttpTokens": "required"},
            "TagSpecifications": [
                {"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
                for kind in ("instance", "volume")
            ],
        }
        if settings.image_id:
            arguments["ImageId"] = settings.image_id
        if settings.launch_template:
            key = "LaunchTemplateId" if settings.launch_template.startswith("lt-") else "LaunchTemplateName"
            arguments["LaunchTemplate"] = {key: settings.launch_template, "Version": settings.launch_template_version}
        if cell.instance_type:
            arguments["InstanceType"] = cell.instance_type
        if cell.subnet:
            arguments["SubnetId"] = cell.subnet
        if settings.security_groups:
            arguments["SecurityGroupIds"] = list(settings.security_groups)
        if settings.instance_profile:
            key = "Arn" if settings.instance_profile.startswith("arn:") else "Name"
            arguments["IamInstanceProfile"] = {key: settings.instance_profile}
        if cell.market == "spot":
            spot = {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}
            arguments["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
        (instance,) = self.client.run_instances(**arguments)["Instances"]
        details = {"instance_id": str(instance["InstanceId"]), "cell": str(cell)}
        return Unit(unit_id, group.name, UnitState.BOOTING, time.time(), request_id, details)

    def terminate(self, unit_ids: list[str]) -> None:
        wanted = set(unit_ids)
        victims = [
            str(i["InstanceId"])
            for i in listing.instances(self.client, self.identity)
            if listing.tags_of(i).get(TAG_UNIT) in wanted
        ]
        for start in range(0, len(victims), TERMINATE_BATCH):
            self.client.terminate_instances(InstanceIds=victims[start : start + TERMINATE_BATCH])

    def list_units(self) -> list[Unit]:
        return listing.list_units(self.client, self.identity)


def make_provider(context: ProviderContext, options: Ec2Options) -> Ec2Provider:
    return Ec2Provider(context, options)
