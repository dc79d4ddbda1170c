"""A unit's ``WorkerLaunch`` rendered as EC2 user data: the shell script an instance runs once, as root, at boot.

The script (``user_data.sh``, filled in here) exports the launch's environment, runs the group's
``setup`` lines, fetches the CURVE keys if the scheduler uses them, starts the unit's workers with the
same argv every provider renders (``python -m scaler.worker.main ADDRESS ... --tag ...``), waits for
them, and then shuts the instance down, which terminates it (the dead-man's switch: a worker exits
after ``--death-timeout`` without its scheduler, and so does the instance).

It also points the workers at the instance metadata service (``SCALER_INSTANCE_METADATA``), on every
instance: the market (spot or on-demand) is chosen by the ladder after this is rendered, and on an
on-demand instance the watch costs a 404 every few seconds. A spot instance's workers then see the
interruption notice and leave in good order (``scaler/worker/interruption.py``, docs/ec2.md).

No secret is ever written into user data (anyone with ``ec2:DescribeInstanceAttribute`` can read
it): the CURVE key files (``CURVE_CLIENT_FILES``) are read at boot from SSM Parameter Store
SecureStrings ``<curve_keys_parameter>/<file name>``, written 0600 into a fresh 0700 directory, and
the workers pointed at it by ``Credentials.remote_environment``. A loopback scheduler's per-cluster
secret never leaves its host, so it is not delivered at all.
"""

from __future__ import annotations

import shlex
from importlib.resources import files

from scaler.adapters.ec2.spec import Ec2Options
from scaler.adapters.errors import ConfigurationError
from scaler.adapters.launch import CURVE_CLIENT_FILES, CredentialKind, WorkerLaunch

USER_DATA_LIMIT = 16384  # bytes EC2 accepts, before base64
KEYS_DIRECTORY = "$SCALER_KEYS_DIR"

FETCH_KEYS = """SCALER_KEYS_DIR="$(mktemp -d /run/scaler-keys.XXXXXX)"
{python} - "$SCALER_KEYS_DIR" <<'PYTHON'
import os, sys
import boto3
ssm = boto3.client("ssm"{region})
for name in {names!r}:
    value = ssm.get_parameter(Name={prefix!r} + "/" + name, WithDecryption=True)["Parameter"]["Value"]
    fd = os.open(os.path.join(sys.argv[1], name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, value.encode())
    os.close(fd)
PYTHON"""


def template() -> str:
    return files("scaler.adapters.ec2").joinpath("user_data.sh").read_text()


def exports(environment: dict[str, str]) -> str:
    """``export`` lines; a value naming ``KEYS_DIRECTORY`` is left for the shell to expand."""
    lines = []
    for key, value in environment.items():
        quoted = f'"{value}"' if value == KEYS_DIRECTORY else shlex.quote(value)
        lines.append(f"export {key}={quoted}")
    return "\n".join(lines)


def fetch_keys(launch: WorkerLaunch, options: Ec2Options) -> str:
    """The lines that place the CURVE keys for the workers, or "" if the scheduler takes none."""
    if launch.credentials.kind is not CredentialKind.CURVE_KEYS:
        return ""
    if not options.curve_keys_parameter:
        raise ConfigurationError(
            "the scheduler uses CURVE keys: set options.curve_keys_parameter to the SSM prefix holding "
            f"{' and '.join(CURVE_CLIENT_FILES)} (SecureString); keys never go into user data"
        )
    region = f", region_name={options.region!r}" if options.region else ""
    prefix = options.curve_keys_parameter.rstrip("/")
    python = shlex.quote(options.python)
    fetch = FETCH_KEYS.format(python=python, region=region, names=CURVE_CLIENT_FILES, prefix=prefix)
    return f"{fetch}\n{exports(launch.credentials.remote_environment(KEYS_DIRECTORY))}"


def render(launch: WorkerLaunch, options: Ec2Options) -> str:
    """The user data of one unit; ``ConfigurationError`` if it cannot be delivered safely or is too long."""
    workers = "\n".join(f"{shlex.join(launch.argv(index, options.python))} &" for index in range(launch.workers))
    text = (
        template()
        .replace("@UNIT_ID@", launch.unit_id)
        .replace("@ENVIRONMENT@", exports(dict(launch.environment)))
        .replace("@SETUP@", options.setup)
        .replace("@KEYS@", fetch_keys(launch, options))
        .replace("@WORKERS@", workers)
    )
    if len(text.encode()) > USER_DATA_LIMIT:
        raise ConfigurationError(f"user data of {launch.unit_id} is {len(text.encode())} bytes, over EC2's 16 KiB")
    return text
