from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.utility.capabilities import CapabilityError, canonical, parse_capabilities


def test_quantities_and_labels() -> None:
    caps = parse_capabilities("cpu=4, gpu=1,linux,zone:us-east-1a")
    assert caps.as_dict() == {"cpu": 4.0, "gpu": 1.0}
    assert caps.labels == {"linux", "zone:us-east-1a"}
    assert canonical("linux,gpu=1,cpu=4") == "cpu=4,gpu=1,linux"


def test_one_rule_for_matching() -> None:
    worker = parse_capabilities("cpu=4,gpu=1,linux")
    assert worker.serves(parse_capabilities("cpu=4"))
    assert worker.serves(parse_capabilities("cpu=1,gpu=1,linux"))
    assert not worker.serves(parse_capabilities("cpu=5"))
    assert not worker.serves(parse_capabilities("cpu=1,windows"))
    assert not worker.serves(parse_capabilities("cpu=1"), free={"cpu": 0.5})
    assert not parse_capabilities("cpu=1").serves(parse_capabilities("gpu=1"))


@pytest.mark.parametrize("bad", ["cpu=x", "cpu=-1", "cpu=inf", "9lives", "a b", "cpu=nan"])
def test_bad_strings_name_the_item(bad: str) -> None:
    with pytest.raises(CapabilityError, match="capability"):
        parse_capabilities(bad)


@given(
    st.dictionaries(st.sampled_from(["cpu", "gpu", "mem"]), st.integers(0, 64)), st.sets(st.sampled_from(["a", "b"]))
)
def test_canonical_is_stable(quantities: dict[str, int], labels: set[str]) -> None:
    text = ",".join([*(f"{k}={v}" for k, v in quantities.items()), *labels])
    assert canonical(canonical(text)) == canonical(text)
    assert parse_capabilities(canonical(text)) == parse_capabilities(text)
