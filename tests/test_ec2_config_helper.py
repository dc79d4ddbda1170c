"""scaler_ec2_config: terraform/aws's outputs become a deployment file that loads as it is.

The outputs are what ``terraform output -json`` prints for this module (every output of outputs.tf,
with realistic ids); a test parses outputs.tf with python-hcl2 so a renamed output cannot go unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import msgspec
import pytest
from scaler.adapters.ec2 import config_helper
from scaler.adapters.ec2.spec import Ec2Options

from scaler.config import load_config

MODULE = Path(__file__).resolve().parent.parent / "terraform" / "aws"
SUBNETS = ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]


def output(value: Any, type_: Any = "string", sensitive: bool = False) -> dict[str, Any]:
    return {"sensitive": sensitive, "type": type_, "value": value}


def realistic_outputs() -> dict[str, Any]:
    """``terraform output -json`` after ``terraform apply -var cluster_id=blue`` (every output of outputs.tf)."""
    arn = "arn:aws:iam::123456789012"
    return {
        "cluster_id": output("blue"),
        "region": output("us-east-1"),
        "subnet_ids": output(SUBNETS, ["tuple", ["string", "string"]]),
        "security_group_id": output("sg-0123456789abcdef0"),
        "launch_template_id": output("lt-0123456789abcdef0"),
        "launch_template_name": output("scaler-blue-workers"),
        "instance_profile_name": output("scaler-blue-workers"),
        "instance_profile_arn": output(f"{arn}:instance-profile/scaler-blue-workers"),
        "keys_parameter_prefix": output("/scaler/blue/curve-keys"),
        "adapter_policy_arn": output(f"{arn}:policy/scaler-blue-adapter"),
        "head_private_ip": output(None, "dynamic"),  # head = false
        "head_keys_prefix": output("/scaler/blue/head-keys"),
    }


def declared_outputs() -> set[str]:
    with (MODULE / "outputs.tf").open() as file:
        parsed = hcl2.load(file)
    return {name.strip('"') for block in parsed.get("output", []) for name in block}  # python-hcl2 may keep quotes


def test_every_output_the_helper_reads_is_declared_by_the_module() -> None:
    declared = declared_outputs()
    assert set(config_helper.READS) <= declared, set(config_helper.READS) - declared
    assert set(realistic_outputs()) == declared, "the fixture mirrors outputs.tf"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ec2.toml"
    path.write_text(text)
    return path


def test_outputs_round_trip_into_a_loadable_deployment_file(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(realistic_outputs()))
    argv = ["--from-terraform", str(MODULE), "--outputs", str(outputs), "--scheduler", "tcp://10.42.0.10:6378"]
    argv += ["--python", "/opt/scaler/bin/python", "--setup", "pip install 'scaler[ec2]' && echo \"done\""]
    ran = subprocess.run(
        [sys.executable, "-m", "scaler.adapters.ec2.config_helper", *argv], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    config = load_config(write_config(tmp_path, ran.stdout))
    assert config.cluster_id == "blue" and config.scheduler.address == "tcp://10.42.0.10:6378"
    assert config.scheduler.curve_keys == "~/.scaler/keys"
    (adapter,) = config.adapter
    assert adapter.provider == "ec2"
    assert {g.name: g.capabilities for g in adapter.group} == {"cpu": "cpu=4", "gpu": "gpu=1,cpu=4"}
    options = msgspec.convert(adapter.options, Ec2Options)
    assert options.region == "us-east-1" and options.curve_keys_parameter == "/scaler/blue/curve-keys"
    assert set(options.groups) == {"cpu", "gpu"}
    assert options.python == "/opt/scaler/bin/python" and options.setup == "pip install 'scaler[ec2]' && echo \"done\""
    for group in options.groups.values():
        assert group.subnets == tuple(SUBNETS)
        assert group.launch_template == "lt-0123456789abcdef0"
        assert group.instance_profile == "scaler-blue-workers"
        assert group.security_groups == ("sg-0123456789abcdef0",)


def test_without_a_scheduler_the_placeholder_loads_and_is_flagged(tmp_path: Path) -> None:
    found = config_helper.values(realistic_outputs())
    text = config_helper.render(found, config_helper.PLACEHOLDER, "/etc/scaler/keys")
    assert "REPLACE" in text
    assert load_config(write_config(tmp_path, text)).scheduler.address == config_helper.PLACEHOLDER


def test_a_missing_output_is_named_and_no_terraform_is_a_plain_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = realistic_outputs()
    del outputs["keys_parameter_prefix"]
    with pytest.raises(config_helper.HelperError, match="lack keys_parameter_prefix"):
        config_helper.values(outputs)
    monkeypatch.setenv("PATH", str(tmp_path))  # no terraform here
    with pytest.raises(SystemExit) as info:
        config_helper.main(["--from-terraform", str(tmp_path)])
    assert info.value.code == 2 and "--outputs" in capsys.readouterr().err


def test_terraform_on_path_is_run_in_the_module_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, module = tmp_path / "bin", tmp_path / "module"
    bin_dir.mkdir()
    module.mkdir()
    (module / "outputs.json").write_text(json.dumps(realistic_outputs()))
    fake = bin_dir / "terraform"  # a stand-in: prints the saved outputs if asked exactly `output -json`
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "output -json" ] || exit 9\nexec cat outputs.json\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config_helper.main(["--from-terraform", str(module), "--scheduler", "tcp://10.42.0.10:6378"])
    text = capsys.readouterr().out
    assert load_config(write_config(tmp_path, text)).cluster_id == "blue"
