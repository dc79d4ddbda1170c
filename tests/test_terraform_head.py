"""terraform/aws's optional head instance (head.tf), checked without terraform: its structure with python-hcl2,
its user data rendered as terraform would render it and parsed by bash, its deployment file by the loader.

checkov runs over the whole module, head included, in tests/test_terraform_aws.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scaler.adapters.ec2 import config_helper

from scaler.config import load_config
from tests.test_terraform_aws import MODULE, conditions, load, resources, statements

HEADED = ("aws_iam_role", "aws_iam_role_policy", "aws_iam_instance_profile", "aws_security_group", "aws_instance")
TEMPLATE = MODULE / "head_user_data.sh.tftpl"


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    return load()


def head_of(tf: dict[str, Any], type_: str) -> dict[str, Any]:
    return {name: body for name, body in resources(tf, type_).items() if name.startswith("head")}


def test_every_head_resource_exists_only_with_head_true(tf: dict[str, Any]) -> None:
    assert tf["variable"]["head"]["default"] is False
    for type_ in HEADED:
        found = head_of(tf, type_)
        assert found, f"no {type_} of the head"
        for name, body in found.items():
            assert body["count"] == "${var.head ? 1 : 0}", f"{type_}.{name}"
    assert "var.head ?" in tf["locals"]["head_key_files"]
    assert head_of(tf, "aws_ssm_parameter")["head_keys"]["for_each"] == "${toset(local.head_key_files)}"


def test_the_head_has_its_own_role_with_the_adapter_policy_and_its_keys(tf: dict[str, Any]) -> None:
    policies = {p["policy"] for p in head_of(tf, "aws_iam_role_policy").values()}
    assert policies == {
        "${data.aws_iam_policy_document.adapter.json}",
        "${data.aws_iam_policy_document.head_keys.json}",
    }
    assert {p["role"] for p in head_of(tf, "aws_iam_role_policy").values()} == {"${aws_iam_role.head[0].id}"}
    assert head_of(tf, "aws_iam_instance_profile")["head"]["role"] == "${aws_iam_role.head[0].name}"
    instance = head_of(tf, "aws_instance")["head"]
    assert instance["iam_instance_profile"] == "${aws_iam_instance_profile.head[0].name}", "never the workers' profile"
    keys = statements(tf["data"]["aws_iam_policy_document"]["head_keys"])
    assert {(tuple(s["actions"]), str(s["resources"])) for s in keys} == {
        (
            ("ssm:GetParameter",),
            str(["arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.head_keys}/*"]),
        ),
        (("kms:Decrypt",), str(["${aws_kms_key.keys.arn}"])),
    }
    (decrypt,) = [s for s in keys if s["actions"] == ["kms:Decrypt"]]
    assert conditions(decrypt) == {("StringEquals", "kms:ViaService", ("ssm.${var.region}.amazonaws.com",))}
    workers = str(tf["data"]["aws_iam_policy_document"]["workers"])
    assert "head" not in workers, "workers never read the scheduler's secret key"


def test_the_head_instance_requires_imdsv2_encrypts_and_joins_the_workers_group(tf: dict[str, Any]) -> None:
    instance = head_of(tf, "aws_instance")["head"]
    (metadata,) = instance["metadata_options"]
    assert metadata["http_tokens"] == "required" and metadata["http_put_response_hop_limit"] == 1
    assert instance["root_block_device"][0]["encrypted"] is True
    assert instance["vpc_security_group_ids"] == [
        "${aws_security_group.workers.id}",
        "${aws_security_group.head[0].id}",
    ]
    assert instance["instance_initiated_shutdown_behavior"] == "stop", "the head is not a dead-man's-switch worker"
    assert "key_name" not in instance, "no SSH key pair: reach it through SSM or a tunnel via a host you run"


def test_the_head_outputs_are_what_the_config_helper_reads(tf: dict[str, Any]) -> None:
    assert set(tf["locals"]["head_outputs"]) == set(config_helper.READS)
    assert set(tf["output"]) >= {"head_private_ip", "head_keys_prefix"}


def rendered_user_data() -> str:
    """The template as terraform's templatefile renders it for sample values (the module's variables)."""
    outputs = {name: {"value": f"sample-{name}"} for name in config_helper.READS}
    outputs["subnet_ids"] = {"value": ["subnet-0a", "subnet-0b"]}
    values: dict[str, Any] = {
        "region": "us-east-1",
        "port": 6378,
        "scaler_source": "scaler[ec2]==0.1.0",
        "head_keys": "/scaler/blue/head-keys",
        "head_key_files": ["server.key", "server.key_secret", "client.key", "client.key_secret"],
        "outputs_json": json.dumps(outputs),
    }
    text = TEMPLATE.read_text()
    text = text.replace("${jsonencode(head_key_files)}", json.dumps(values["head_key_files"]))
    used = set(re.findall(r"\$\{([a-z_]+)\}", text))
    assert used <= set(values), f"the template names {used - set(values)}, which head.tf does not pass"
    head_tf = (MODULE / "head.tf").read_text()
    assert all(f"{name} " in head_tf for name in values), "head.tf passes every value the template takes"
    return re.sub(r"\$\{([a-z_]+)\}", lambda m: str(values[m.group(1)]), text)


def test_the_head_user_data_is_valid_bash_starting_both_services_with_no_secret(tmp_path: Path) -> None:
    text = rendered_user_data()
    script = tmp_path / "head.sh"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "scaler_ec2_config --from-terraform /etc/scaler --outputs /etc/scaler/outputs.json" in text
    assert '--python /opt/scaler/bin/python --setup "$INSTALL"' in text, "workers install scaler as the head did"
    assert "for service in scheduler worker_adapter_ec2" in text and "ExecStart=/opt/scaler/bin/scaler_$service" in text
    assert "systemctl enable --now scaler-scheduler.service scaler-worker_adapter_ec2.service" in text
    assert "key_secret = " not in text and "BEGIN" not in text, "keys come from SSM at boot"
    assert len(text.encode()) < 16384, "EC2's user data limit"


def test_the_outputs_the_head_writes_make_a_loadable_deployment_file(tmp_path: Path) -> None:
    text = rendered_user_data()
    start = text.index("<<'JSON'\n") + len("<<'JSON'\n")
    outputs = json.loads(text[start : text.index("\nJSON\n")])
    rendered = config_helper.render(config_helper.values(outputs), "tcp://10.42.0.5:6378", "/etc/scaler/keys")
    path = tmp_path / "ec2.toml"
    path.write_text(rendered.replace("sample-launch_template_id", "lt-0123456789abcdef0"))
    assert load_config(path).scheduler.curve_keys == "/etc/scaler/keys"
