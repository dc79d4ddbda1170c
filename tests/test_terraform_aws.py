"""terraform/aws, checked without terraform: its structure parsed with python-hcl2, and checkov's policies.

checkov is not in the test extra: its exact pins (boto3, packaging, networkx) make a fresh
``pip install -e '.[test]'`` backtrack Ray below the version the compat layer is checked against.
It runs from a venv of its own that ``tools/checkov.sh`` makes once (``test.sh`` runs it and sets
``$SCALER_CHECKOV``), so the suite installs nothing and asks no package index.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
from scaler.adapters.launch import CURVE_CLIENT_FILES

MODULE = Path(__file__).resolve().parent.parent / "terraform" / "aws"
EVERYWHERE = ("0.0.0.0/0", "::/0")

TAGGABLE = {
    "aws_vpc",
    "aws_subnet",
    "aws_internet_gateway",
    "aws_route_table",
    "aws_default_security_group",
    "aws_security_group",
    "aws_vpc_security_group_ingress_rule",
    "aws_vpc_security_group_egress_rule",
    "aws_iam_role",
    "aws_iam_policy",
    "aws_iam_instance_profile",
    "aws_kms_key",
    "aws_ssm_parameter",
    "aws_launch_template",
    "aws_flow_log",
    "aws_cloudwatch_log_group",
    "aws_instance",
}
UNTAGGABLE = {"aws_route_table_association", "aws_iam_role_policy", "aws_kms_alias"}
OUTPUTS = {
    "cluster_id",
    "region",
    "subnet_ids",
    "security_group_id",
    "launch_template_id",
    "launch_template_name",
    "instance_profile_name",
    "instance_profile_arn",
    "keys_parameter_prefix",
    "adapter_policy_arn",
}
ADAPTER_ACTIONS = {
    "ec2:RunInstances",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",
    "ec2:CreateTags",
    "ec2:TerminateInstances",
    "iam:PassRole",
    "ssm:GetParameter",
    "kms:Decrypt",
}


def clean(value: Any) -> Any:
    """python-hcl2's output without its markers: quotes kept around strings, ``__is_block__``, comments."""
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load() -> dict[str, Any]:
    """Every block of every .tf file, by kind: resources and data sources as ``{type: {name: body}}``."""
    merged: dict[str, Any] = {"resource": {}, "data": {}, "variable": {}, "output": {}, "provider": {}, "locals": {}}
    for path in sorted(MODULE.glob("*.tf")):
        with path.open() as file:
            parsed = clean(hcl2.load(file))
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for type_, named in block.items():
                    for name, body in named.items():
                        assert name not in merged[kind].setdefault(type_, {}), f"{type_}.{name} twice"
                        merged[kind][type_][name] = body
        for kind in ("variable", "output", "provider"):
            for block in parsed.get(kind, []):
                merged[kind].update(block)
        for block in parsed.get("locals", []):
            merged["locals"].update(block)
    return merged


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    return load()


def resources(tf: dict[str, Any], type_: str) -> dict[str, Any]:
    return tf["resource"].get(type_, {})  # type: ignore[no-any-return]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """A policy document's statements, the dynamic ones (``content``) included."""
    found = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        found += dynamic["statement"]["content"] if "statement" in dynamic else []
    return found


def conditions(statement: dict[str, Any]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(c["test"], c["variable"], tuple(c["values"])) for c in statement.get("condition", [])}


def test_every_file_parses_and_the_module_is_split_by_concern() -> None:
    names = {path.name for path in MODULE.glob("*.tf")}
    assert {"versions.tf", "variables.tf", "outputs.tf", "network.tf", "security.tf", "iam.tf"} <= names
    assert {"launch_template.tf", "ssm.tf", "adapter_policy.tf"} <= names
    assert (MODULE / "README.md").is_file()
    load()


def test_every_taggable_resource_is_tagged_and_the_provider_tags_the_cluster(tf: dict[str, Any]) -> None:
    aws = tf["provider"]["aws"]
    assert aws["default_tags"][0]["tags"] == "${local.tags}"
    assert tf["locals"]["tags"] == '${merge(var.tags, {"scaler:cluster" = var.cluster_id})}'
    for type_, named in tf["resource"].items():
        assert type_ in TAGGABLE | UNTAGGABLE, f"{type_}: classify it as taggable or not in this test"
        if type_ in TAGGABLE:
            for name, body in named.items():
                assert "Name" in body.get("tags", {}), f"{type_}.{name} has no tags"


def test_instances_and_volumes_started_from_the_template_carry_the_cluster_tag(tf: dict[str, Any]) -> None:
    template = resources(tf, "aws_launch_template")["workers"]
    (dynamic,) = [d["tag_specifications"] for d in template["dynamic"] if "tag_specifications" in d]
    assert {"instance", "volume"} <= set(dynamic["for_each"])
    assert "local.tags" in dynamic["content"][0]["tags"]


def ingress(tf: dict[str, Any]) -> list[dict[str, Any]]:
    rules = list(resources(tf, "aws_vpc_security_group_ingress_rule").values())
    rules += [r for r in resources(tf, "aws_security_group_rule").values() if r.get("type") == "ingress"]
    for group in [*resources(tf, "aws_security_group").values(), *resources(tf, "aws_default_security_group").values()]:
        rules += group.get("ingress", [])
    return rules


def test_no_ingress_from_everywhere_only_the_group_and_the_scheduler_port(tf: dict[str, Any]) -> None:
    rules = ingress(tf)
    for rule in rules:
        sources = [rule.get("cidr_ipv4"), rule.get("cidr_ipv6"), *rule.get("cidr_blocks", [])]
        sources += rule.get("ipv6_cidr_blocks", [])
        assert not set(sources) & set(EVERYWHERE), rule
    by_source = {rule.get("cidr_ipv4") or rule.get("referenced_security_group_id"): rule for rule in rules}
    assert set(by_source) == {"${aws_security_group.workers.id}", "${var.scheduler_cidr}", "${each.value}"}
    clients = by_source.pop("${each.value}")  # the head's (head.tf): each of var.client_cidrs, checked below
    assert clients["security_group_id"] == "${aws_security_group.head[0].id}"
    assert clients["for_each"] == "${var.head ? toset(var.client_cidrs) : toset([])}"
    assert (clients["from_port"], clients["to_port"]) == ("${var.scheduler_port}", "${var.scheduler_port}")
    assert "0.0.0.0/0" in tf["variable"]["client_cidrs"]["validation"][0]["condition"]
    scheduler = by_source["${var.scheduler_cidr}"]
    assert (scheduler["ip_protocol"], scheduler["from_port"], scheduler["to_port"]) == (
        "tcp",
        "${var.scheduler_port}",
        "${var.scheduler_port}",
    )
    assert tf["variable"]["scheduler_port"]["default"] == 6378
    assert "0.0.0.0/0" in tf["variable"]["scheduler_cidr"]["validation"][0]["condition"]


def test_the_launch_template_requires_imdsv2_encrypts_and_terminates_on_shutdown(tf: dict[str, Any]) -> None:
    template = resources(tf, "aws_launch_template")["workers"]
    (metadata,) = template["metadata_options"]
    assert metadata["http_tokens"] == "required"
    assert metadata["http_put_response_hop_limit"] == 1
    (root,) = template["block_device_mappings"]
    assert root["ebs"][0]["encrypted"] is True
    assert template["instance_initiated_shutdown_behavior"] == "terminate"
    assert template["iam_instance_profile"][0]["arn"] == "${aws_iam_instance_profile.workers.arn}"
    assert template["vpc_security_group_ids"] == ["${aws_security_group.workers.id}"]


def test_the_keys_parameter_is_a_secure_string_with_no_secret_in_the_repository(tf: dict[str, Any]) -> None:
    parameter = resources(tf, "aws_ssm_parameter")["keys"]
    assert parameter["for_each"] == "${toset(local.worker_key_files)}"
    assert tf["locals"]["worker_key_files"] == list(CURVE_CLIENT_FILES), "the files the ec2 adapter's instances read"
    assert parameter["name"] == "${local.keys_prefix}/${each.key}"
    assert tf["output"]["keys_parameter_prefix"]["value"] == "${local.keys_prefix}"
    assert parameter["type"] == "SecureString"
    assert parameter["key_id"] == "${aws_kms_key.keys.arn}"
    assert parameter["value"] == "unset"
    assert parameter["lifecycle"][0]["ignore_changes"] == ["value"]
    assert resources(tf, "aws_kms_key")["keys"]["enable_key_rotation"] is True


def test_the_worker_role_may_only_read_the_key_parameters(tf: dict[str, Any]) -> None:
    document = tf["data"]["aws_iam_policy_document"]["workers"]
    granted = {(tuple(s["actions"]), str(s["resources"])) for s in statements(document)}
    assert granted == {
        (("ssm:GetParameter",), "${values(aws_ssm_parameter.keys)[*].arn}"),
        (("kms:Decrypt",), str(["${aws_kms_key.keys.arn}"])),
    }
    (decrypt,) = [s for s in statements(document) if s["actions"] == ["kms:Decrypt"]]
    assert conditions(decrypt) == {("StringEquals", "kms:ViaService", ("ssm.${var.region}.amazonaws.com",))}
    policies = [p for p in resources(tf, "aws_iam_role_policy").values() if p["role"] == "${aws_iam_role.workers.id}"]
    assert [p["policy"] for p in policies] == ["${data.aws_iam_policy_document.workers.json}"]
    assert not resources(tf, "aws_iam_role_policy_attachment")
    assert resources(tf, "aws_iam_instance_profile")["workers"]["role"] == "${aws_iam_role.workers.name}"


def adapter_statements(tf: dict[str, Any]) -> list[dict[str, Any]]:
    return statements(tf["data"]["aws_iam_policy_document"]["adapter"])


def test_the_adapter_policy_names_only_the_calls_the_adapter_makes(tf: dict[str, Any]) -> None:
    found = adapter_statements(tf)
    assert {a for s in found for a in s["actions"]} == ADAPTER_ACTIONS
    for statement in found:
        assert "effect" not in statement or statement["effect"] == "Allow"
        assert not any("*" in action for action in statement["actions"]), statement
        if statement["resources"] == ["*"]:
            assert set(statement["actions"]) == {"ec2:DescribeInstances", "ec2:DescribeInstanceTypes"}
        else:
            listed = statement["resources"] if isinstance(statement["resources"], list) else []
            assert "*" not in listed and '"*"' not in str(statement["resources"]), statement
    document = tf["data"]["aws_iam_policy_document"]["adapter"]
    optional = [d["statement"] for d in document.get("dynamic", [])]
    assert [s["actions"] for d in optional for s in d["content"]] == [["ssm:GetParameter"], ["kms:Decrypt"]]
    assert all(d["for_each"] == "${var.adapter_reads_keys ? [1] : []}" for d in optional)
    assert tf["variable"]["adapter_reads_keys"]["default"] is False
    assert not any(a in ("ssm:GetParameter", "kms:Decrypt") for s in document["statement"] for a in s["actions"])


def test_the_adapter_terminates_and_launches_only_this_clusters_instances(tf: dict[str, Any]) -> None:
    found = adapter_statements(tf)
    (terminate,) = [s for s in found if "ec2:TerminateInstances" in s["actions"]]
    assert terminate["actions"] == ["ec2:TerminateInstances"]
    assert conditions(terminate) == {("StringEquals", "aws:ResourceTag/scaler:cluster", ("${var.cluster_id}",))}
    instance = "${local.ec2_arn}:instance/*"
    (run,) = [s for s in found if "ec2:RunInstances" in s["actions"] and instance in s["resources"]]
    assert conditions(run) == {("StringEquals", "aws:RequestTag/scaler:cluster", ("${var.cluster_id}",))}
    (tag,) = [s for s in found if "ec2:CreateTags" in s["actions"]]
    assert conditions(tag) == {("StringEquals", "ec2:CreateAction", ("RunInstances",))}


def test_the_adapter_passes_only_the_worker_role_to_ec2(tf: dict[str, Any]) -> None:
    (passing,) = [s for s in adapter_statements(tf) if "iam:PassRole" in s["actions"]]
    assert passing["actions"] == ["iam:PassRole"]
    assert passing["resources"] == ["${aws_iam_role.workers.arn}"]
    assert conditions(passing) == {("StringEquals", "iam:PassedToService", ("ec2.amazonaws.com",))}


def test_the_outputs_a_config_helper_reads_are_there(tf: dict[str, Any]) -> None:
    assert set(tf["output"]) >= OUTPUTS


def test_every_checkov_skip_gives_a_reason() -> None:
    for path in MODULE.glob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.search(r"checkov:skip=CKV2?_[A-Z0-9_]+:\S.{10,}", line), f"{path.name}: {line.strip()}"


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov from ``$SCALER_CHECKOV`` (``test.sh`` installs it with ``tools/checkov.sh``): no test installs it."""
    found = os.environ.get("SCALER_CHECKOV", "")
    if found and Path(found).is_file():
        return Path(found)
    if os.environ.get("SCALER_REQUIRE_CHECKOV"):
        pytest.fail(
            f"SCALER_REQUIRE_CHECKOV is set but $SCALER_CHECKOV ({found!r}) is not a checkov: run tools/checkov.sh"
        )
    pytest.skip("checkov is not installed: ./test.sh installs it (tools/checkov.sh) and sets $SCALER_CHECKOV")


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("head", [False, True], ids=["workers-only", "with-head"])
def test_checkov_finds_no_failed_check(checkov: Path, head: bool, tmp_path: Path) -> None:
    argv = [str(checkov), "-d", str(MODULE), "--framework", "terraform", "--compact", "--skip-download", "-o", "json"]
    if head:  # head.tf's resources exist only with head = true: check them as deployed
        variables = tmp_path / "head.tfvars"
        variables.write_text('head = true\nclient_cidrs = ["10.8.0.0/16"]\n')
        argv += ["--var-file", str(variables)]
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert ran.stdout.lstrip().startswith("{"), f"checkov exited {ran.returncode}:\n{ran.stderr[-3000:]}"
    report = json.loads(ran.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']} {c['file_path']}" for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and ran.returncode == 0, "checkov failed checks:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0, report["results"]["parsing_errors"]
    assert summary["resource_count"] >= 20 and summary["passed"] > 100, summary
    checked = {c["resource"] for c in report["results"]["passed_checks"]}
    assert ("aws_instance.head[0]" in checked) is head, "the head is checked exactly when it is deployed"


def test_the_longest_cluster_id_still_fits_an_iam_role_name(tf: dict[str, Any]) -> None:
    condition = tf["variable"]["cluster_id"]["validation"][0]["condition"]
    longest = 1 + int(re.search(r"\{0,(\d+)\}", condition).group(1))  # type: ignore[union-attr]
    for role in resources(tf, "aws_iam_role").values():
        assert len(role["name"].replace("${local.name}", "scaler-" + "x" * longest)) <= 64, role["name"]
