"""The EC2 provider's pure parts, without any server: the error table by code, and the ladder's order and cooldown."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from scaler.adapters.ec2.errors import ERRORS
from scaler.adapters.ec2.ladder import Cell, Ladder, cells
from scaler.adapters.ec2.spec import Ec2Group
from scaler.adapters.errors import (
    AuthError,
    CapacityError,
    ConfigurationError,
    PartialLaunchError,
    ProviderBug,
    ProviderError,
    QuotaError,
    ThrottledError,
    classify,
)
from scaler.adapters.provider import Unit, UnitState


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "test"}}, "RunInstances")


@pytest.mark.parametrize(
    ("code", "ours"),
    [
        ("InsufficientInstanceCapacity", CapacityError),
        ("Unsupported", CapacityError),
        ("VcpuLimitExceeded", QuotaError),
        ("InstanceLimitExceeded", QuotaError),
        ("MaxSpotInstanceCountExceeded", QuotaError),
        ("RequestLimitExceeded", ThrottledError),
        ("Throttling", ThrottledError),
        ("UnauthorizedOperation", AuthError),
        ("AuthFailure", AuthError),
        ("InvalidAMIID.NotFound", ConfigurationError),
        ("InvalidAMIID.Malformed", ConfigurationError),
        ("InvalidSubnetID.NotFound", ConfigurationError),
        ("InvalidParameterValue", ConfigurationError),
        ("SomethingNew", ProviderBug),
        ("InvalidAMIIDX", ProviderBug),  # a prefix row matches whole dotted parts only
    ],
)
def test_codes_are_classified(code: str, ours: type[ProviderError]) -> None:
    assert classify(ERRORS, client_error(code)) is ours


def test_errors_without_a_code() -> None:
    assert classify(ERRORS, NoCredentialsError()) is AuthError
    assert classify(ERRORS, EndpointConnectionError(endpoint_url="http://127.0.0.1:1")) is ThrottledError


def test_cells_are_market_then_type_then_subnet() -> None:
    group = Ec2Group(instance_types=("a", "b"), subnets=("s1", "s2"), market="spot-then-on-demand", image_id="ami")
    order = [(c.market, c.instance_type, c.subnet) for c in cells(group)]
    assert order[:4] == [("spot", "a", "s1"), ("spot", "a", "s2"), ("spot", "b", "s1"), ("spot", "b", "s2")]
    assert len(order) == 8 and {m for m, _, _ in order[4:]} == {"on-demand"}
    template = Ec2Group(launch_template="lt-0123")
    assert cells(template) == [Cell("on-demand", "", "")]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_cell_out_of_capacity_cools_down_then_is_tried_again() -> None:
    clock = Clock()
    ladder = Ladder(cooldown=60.0, clock=clock)
    group = Ec2Group(instance_types=("a",), subnets=("s1", "s2"), image_id="ami")
    tried: list[str] = []

    def run(cell: Cell, unit_id: str) -> Unit:
        tried.append(cell.subnet)
        if cell.subnet == "s1":
            raise client_error("InsufficientInstanceCapacity")
        return Unit(unit_id, "g", UnitState.BOOTING, 0.0)

    def launch(*ids: str) -> list[Unit]:
        return ladder.launch(cells(group), list(ids), run, lambda exc: classify(ERRORS, exc))

    assert len(launch("u1", "u2")) == 2 and tried == ["s1", "s2", "s2"]
    clock.now = 61.0
    launch("u3")
    assert tried[3:] == ["s1", "s2"], "after the cooldown the first cell is tried again"


def test_every_cell_out_after_some_units_is_a_partial_capacity_error() -> None:
    ladder = Ladder(cooldown=60.0, clock=Clock())
    group = Ec2Group(instance_types=("a", "b"), image_id="ami")
    left = [1]

    def run(cell: Cell, unit_id: str) -> Unit:
        if left.pop() if left else 0:
            return Unit(unit_id, "g", UnitState.BOOTING, 0.0)
        raise client_error("InsufficientInstanceCapacity")

    with pytest.raises(PartialLaunchError) as info:
        ladder.launch(cells(group), ["u1", "u2"], run, lambda exc: classify(ERRORS, exc))
    assert [u.unit_id for u in info.value.units] == ["u1"] and isinstance(info.value.cause, CapacityError)
    assert info.value.retryable


def test_a_group_needs_an_image_and_a_type_and_leaves_our_tags_alone() -> None:
    with pytest.raises(ValueError, match="image_id or launch_template"):
        Ec2Group(instance_types=("a",))
    with pytest.raises(ValueError, match="instance_types"):
        Ec2Group(image_id="ami")
    with pytest.raises(ValueError, match="scaler:cluster"):
        Ec2Group(instance_types=("a",), image_id="ami", tags={"scaler:cluster": "x"})


def test_a_missing_region_is_a_plain_configuration_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from scaler.adapters.ec2.provider import make_client
    from scaler.adapters.ec2.spec import Ec2Options

    for key in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ValueError, match=r"options\.region"):
        make_client(Ec2Options())
    client = make_client(Ec2Options(region="eu-west-1", endpoint_url="http://127.0.0.1:1"))  # made, never called
    assert client.meta.region_name == "eu-west-1"
