"""``scaler_ec2_config --from-terraform DIR > ec2.toml``: a deployment file from terraform/aws's outputs.

Why: after ``terraform apply`` every id the adapter's options need (subnets, security group, launch
template, instance profile, the keys' SSM prefix) is in the module's outputs; copying them by hand into
``[adapter.options]`` is where typos happen. This reads ``terraform output -json`` (from a saved file
with ``--outputs``, or by running ``terraform output -json`` in DIR when a terraform binary is on PATH)
and writes a complete deployment file that ``scaler.config.load_config`` accepts as it is, with one CPU
group and one GPU group as examples to edit. No AWS call is made and no secret is read.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The module's outputs this helper reads (terraform/aws/outputs.tf; a test checks each exists there).
READS = (
    "cluster_id",
    "region",
    "subnet_ids",
    "security_group_id",
    "launch_template_id",
    "instance_profile_name",
    "keys_parameter_prefix",
)
PLACEHOLDER = "tcp://SCHEDULER-PRIVATE-IP:6378"  # parses as an address, binds nowhere: it must be replaced


class HelperError(Exception):
    """A problem the user fixes (no terraform, a missing output): printed as one line, exit status 2."""


def terraform_outputs(directory: Path, outputs_file: Path | None) -> dict[str, Any]:
    """``terraform output -json`` as a dict: read from ``outputs_file``, else run in ``directory``."""
    if outputs_file is not None:
        try:
            text = outputs_file.read_text()
        except OSError as exc:
            raise HelperError(f"{outputs_file}: cannot read: {exc.strerror or exc}") from exc
        where = str(outputs_file)
    else:
        binary = shutil.which("terraform")
        if binary is None:
            raise HelperError(
                "no terraform binary on PATH: run `terraform output -json > outputs.json` where it is, "
                "and pass --outputs outputs.json"
            )
        ran = subprocess.run([binary, "output", "-json"], cwd=directory, capture_output=True, text=True, timeout=120)
        if ran.returncode != 0:
            raise HelperError(f"terraform output -json in {directory} exited {ran.returncode}: {ran.stderr.strip()}")
        text, where = ran.stdout, f"terraform output -json in {directory}"
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HelperError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise HelperError(f"{where}: expected an object of outputs")
    return parsed


def values(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Each read output's ``value``; a missing one (an older module, or no apply yet) is named."""
    missing = [name for name in READS if not isinstance(outputs.get(name), dict) or "value" not in outputs[name]]
    if missing:
        raise HelperError(f"terraform outputs lack {', '.join(missing)}: was terraform/aws applied?")
    found = {name: outputs[name]["value"] for name in READS}
    if not isinstance(found["subnet_ids"], list) or not found["subnet_ids"]:
        raise HelperError("output subnet_ids: expected a non-empty list of subnet ids")
    return found


def toml(value: Any) -> str:
    """A TOML literal of a string, number or list of strings (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    raise TypeError(f"no TOML literal for {value!r}")


def render(found: Mapping[str, Any], scheduler: str, keys: str, python: str = "python3", setup: str = "") -> str:
    """The deployment file: scheduler, scaling, one ec2 adapter with a ``cpu`` and a ``gpu`` group."""
    placeholder = scheduler == PLACEHOLDER
    note = "  # REPLACE: the head's private address (workers dial it)" if placeholder else ""
    network = f"""subnets = {toml(found["subnet_ids"])}
launch_template = {toml(found["launch_template_id"])}  # image, IMDSv2, encrypted root, terminate on shutdown
instance_profile = {toml(found["instance_profile_name"])}  # reads the keys' parameters only
security_groups = [{toml(found["security_group_id"])}]"""
    return f"""# Written by scaler_ec2_config from terraform/aws's outputs (docs/ec2.md). Edit the groups freely.
#   scaler_cluster --config ec2.toml
cluster_id = {toml(found["cluster_id"])}  # terraform's cluster_id: the adapter policy allows only these instances

[scheduler]
address = {toml(scheduler)}{note}
curve_keys = {toml(keys)}  # made by scaler_keygen; the workers' half goes to SSM (docs/ec2.md)

[scaling]
idle_timeout = 120
max_launch_per_round = 10

[[adapter]]
provider = "ec2"
name = "ec2"
reconcile_interval = 5
boot_timeout = 600
call_timeout = 60
orphans = "terminate"

[adapter.options]
region = {toml(found["region"])}
curve_keys_parameter = {toml(found["keys_parameter_prefix"])}
python = {toml(python)}
setup = {toml(setup)}  # run before the workers, e.g. pip install 'scaler[ec2]' if the image lacks it
worker_args = ["--death-timeout", "300"]
cooldown = 300

[adapter.options.groups.cpu]
instance_types = ["c7i.xlarge", "c6i.xlarge", "m7i.xlarge"]
market = "spot-then-on-demand"
{network}

[adapter.options.groups.gpu]
instance_types = ["g5.xlarge", "g4dn.xlarge"]
market = "on-demand"
# image_id = "ami-..."  # a GPU group needs an image with NVIDIA drivers; it takes the template's place
{network}

[[adapter.group]]
name = "cpu"
capabilities = "cpu=4"
workers_per_unit = 1
min_units = 0
max_units = 20
priority = 0
cost = 1.0

[[adapter.group]]
name = "gpu"
capabilities = "gpu=1,cpu=4"
workers_per_unit = 1
min_units = 0
max_units = 2
priority = 0
cost = 8.0
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scaler_ec2_config", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-terraform", metavar="DIR", type=Path, required=True, help="terraform/aws's directory")
    parser.add_argument("--outputs", metavar="FILE", type=Path, help="saved `terraform output -json` (no terraform)")
    parser.add_argument("--scheduler", default=PLACEHOLDER, help="tcp://HOST:PORT the scheduler binds, workers dial")
    parser.add_argument("--curve-keys", default="~/.scaler/keys", help="the scheduler's scaler_keygen directory")
    parser.add_argument("--python", default="python3", help="the instances' interpreter with scaler installed")
    parser.add_argument("--setup", default="", help="shell lines the instances run first (e.g. install scaler)")
    options = parser.parse_args(argv)
    try:
        found = values(terraform_outputs(options.from_terraform, options.outputs))
    except HelperError as exc:
        print(f"scaler_ec2_config: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if options.scheduler == PLACEHOLDER:
        print("scaler_ec2_config: no --scheduler: replace the placeholder [scheduler].address", file=sys.stderr)
    sys.stdout.write(render(found, options.scheduler, options.curve_keys, options.python, options.setup))


if __name__ == "__main__":
    main()
