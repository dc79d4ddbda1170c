"""What exists at EC2: this adapter's instances, read back from their tags (the ground truth of ``list_units``).

One paginated ``DescribeInstances`` filtered on the cluster *and* adapter tags (whole values: an EC2
tag filter matches the value exactly, and the tags are compared again here), so another cluster's
or another adapter's instances are never seen. EC2's instance states map to ours in one table,
``STATES``; a terminated instance is gone (EC2 shows it for about an hour) and is only looked at when a
launch checks whether its request was carried out already.
"""

from __future__ import annotations

from typing import Any

from scaler.adapters.identity import TAG_ADAPTER, TAG_CLUSTER, TAG_GROUP, TAG_REQUEST, TAG_UNIT, Identity
from scaler.adapters.provider import Unit, UnitState

STATES: dict[str, UnitState] = {
    "pending": UnitState.BOOTING,
    "running": UnitState.RUNNING,
    "shutting-down": UnitState.TERMINATING,
    "stopping": UnitState.TERMINATING,  # ours never stop (shutdown terminates them): still, it is ending
    "stopped": UnitState.TERMINATING,  # listed, so the runner terminates it rather than forget it
    "terminated": UnitState.TERMINATED,
}
LIVE = sorted(state for state, ours in STATES.items() if ours is not UnitState.TERMINATED)


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for t in instance.get("Tags", [])}


def instances(client: Any, identity: Identity, request_id: str = "", everything: bool = False) -> list[dict[str, Any]]:
    """This adapter's instances (only live ones unless ``everything``), of one request if ``request_id``."""
    filters = [
        {"Name": f"tag:{TAG_CLUSTER}", "Values": [identity.cluster_id]},
        {"Name": f"tag:{TAG_ADAPTER}", "Values": [identity.adapter]},
    ]
    if request_id:
        filters.append({"Name": f"tag:{TAG_REQUEST}", "Values": [request_id]})
    if not everything:
        filters.append({"Name": "instance-state-name", "Values": LIVE})
    found: list[dict[str, Any]] = []
    for page in client.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page.get("Reservations", []):
            found += [i for i in reservation.get("Instances", []) if identity.owns(tags_of(i))]
    return found


def unit_of(instance: dict[str, Any]) -> Unit | None:
    """The unit an instance is, or None if it carries no unit tag (not started by an adapter)."""
    tags = tags_of(instance)
    if not tags.get(TAG_UNIT):
        return None
    state = STATES.get(str(instance.get("State", {}).get("Name", "")), UnitState.TERMINATING)
    launched = instance.get("LaunchTime")
    details = {
        "instance_id": str(instance.get("InstanceId", "")),
        "instance_type": str(instance.get("InstanceType", "")),
        "subnet": str(instance.get("SubnetId", "")),
        "market": "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand",
        "ec2_state": str(instance.get("State", {}).get("Name", "")),
    }
    created = launched.timestamp() if launched is not None else 0.0
    return Unit(tags[TAG_UNIT], tags.get(TAG_GROUP, ""), state, created, tags.get(TAG_REQUEST, ""), details)


def list_units(client: Any, identity: Identity) -> list[Unit]:
    """This adapter's live units (pending, running, shutting down), one per instance."""
    units = [unit_of(instance) for instance in instances(client, identity)]
    return [unit for unit in units if unit is not None]
