"""The EC2 provider's options and entry point, light enough to import when a config is checked.

This module imports no boto3: a deployment file is checked (misspelt keys refused by key path) on a
machine without the ``ec2`` extra, and the provider itself (``scaler.adapters.ec2.provider``) is
imported only when the adapter starts, with ``pip install 'scaler[ec2]'`` as the hint if boto3 is
missing. Launch settings are given per worker group, by the group's name.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from scaler.adapters.identity import TAGS
from scaler.adapters.spec import Options, ProviderSpec

Market = Literal["spot", "on-demand", "spot-then-on-demand"]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class Ec2Group(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How the instances of one worker group are launched; the ladder tries (type x subnet x market) in order."""

    instance_types: tuple[str, ...] = ()  # in order of preference; () only with a launch template that names one
    subnets: tuple[str, ...] = ()  # in order of preference; () = the default VPC's choice (or the template's)
    market: Market = "on-demand"  # spot-then-on-demand: every spot cell first, then every on-demand cell
    image_id: str = ""  # an AMI with Python and scaler installed (or install it with ``setup``)
    launch_template: str = ""  # a template id (lt-...) or name; its settings apply under ours
    launch_template_version: str = "$Default"
    instance_profile: str = ""  # an IAM instance profile name or ARN (needs ssm:GetParameter for CURVE keys)
    security_groups: tuple[str, ...] = ()  # security group ids
    tags: dict[str, str] = {}  # extra instance tags (the scaler:* tags are always ours)
    # "listed": the types in their order, whatever the group asks; "smallest-fitting": only types that hold
    # the group's workers' asked cpu/memory/gpu, smallest first (what a Cluster's NodeConfig gets)
    pick: Literal["listed", "smallest-fitting"] = "listed"

    def __post_init__(self) -> None:
        if not self.image_id and not self.launch_template:
            raise ValueError("a group needs image_id or launch_template")
        if not self.instance_types and not self.launch_template:
            raise ValueError("a group needs instance_types (or a launch_template that names one)")
        if taken := sorted(set(self.tags) & set(TAGS)):
            raise ValueError(f"tags may not set {', '.join(taken)}: the adapter writes them")


class Ec2Options(Options, frozen=True, forbid_unknown_fields=True, kw_only=True):
    region: str = ""  # "" = boto3's default (AWS_REGION, ~/.aws/config)
    endpoint_url: str = ""  # another EC2 endpoint (a moto server in tests); "" = AWS's
    groups: dict[str, Ec2Group] = {}  # launch settings by worker group name
    curve_keys_parameter: str = ""  # SSM SecureString prefix: <prefix>/client.key_secret and <prefix>/server.key
    python: str = "python3"  # the interpreter on the instance that has scaler installed
    setup: str = ""  # shell lines run on the instance before its workers start (e.g. pip install)
    worker_args: tuple[str, ...] = ()  # added to each worker's command line
    cooldown: NonNegative = 300.0  # seconds a cell that ran out of capacity is skipped


SPEC = ProviderSpec(
    "ec2", Ec2Options, "scaler.adapters.ec2.provider:make_provider", "pip install 'scaler[ec2]'", sized_units=True
)
