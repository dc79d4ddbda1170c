"""Who owns a unit: the cluster id, the adapter name, and the one tag scheme every provider writes.

A provider marks each unit it starts with these five tags and ``list_units`` returns only the units
whose cluster *and* adapter tags equal this adapter's, compared as whole values, never as prefixes. EC2
writes them as instance tags; the local provider (and SSH) as ``--tag KEY=VALUE`` arguments of the
worker command, which the worker carries and ignores. Two clusters never list or reap each other's
units, and two adapters of one cluster never touch each other's.

The cluster id is stable across restarts: ``cluster_id`` in the deployment file, else generated once
per deployment and kept in the adapter's state directory, in a file named for the scheduler address the
deployment file gives (``cluster-id.<host>-<port>``). So a restart of one deployment finds its id again,
while two deployments of one user on one host (two schedulers, the same adapter name, the default state
directory) get two ids, and neither is refused by the other's lock nor sees its units.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

TAG_CLUSTER = "scaler:cluster"
TAG_ADAPTER = "scaler:adapter"
TAG_GROUP = "scaler:group"
TAG_UNIT = "scaler:unit"
TAG_REQUEST = "scaler:request"
TAGS = (TAG_CLUSTER, TAG_ADAPTER, TAG_GROUP, TAG_UNIT, TAG_REQUEST)
TAG_FLAG = "--tag"  # the worker flag that carries a tag on a command line

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
NAME_RULE = "1 to 63 letters, digits, '-' or '_', starting with a letter or digit"
CLUSTER_ID_FILE = "cluster-id"


class IdentityError(ValueError):
    """A cluster id or name that cannot go into tags and unit ids."""


def check_name(what: str, value: str) -> str:
    """``value`` if it may go into tags and unit ids, else ``IdentityError`` saying what is allowed."""
    if not NAME_PATTERN.fullmatch(value):
        raise IdentityError(f"{what} {value!r} is not usable in tags and unit ids: {NAME_RULE}")
    return value


@dataclass(frozen=True)
class Identity:
    cluster_id: str
    adapter: str

    def __post_init__(self) -> None:
        check_name("cluster id", self.cluster_id)
        check_name("adapter name", self.adapter)

    def new_unit_id(self, group: str) -> str:
        return f"{self.cluster_id}.{self.adapter}.{group}.{secrets.token_hex(4)}"

    def tags(self, group: str, unit_id: str, request_id: str) -> dict[str, str]:
        """The five tags of one unit, in ``TAGS`` order."""
        return {
            TAG_CLUSTER: self.cluster_id,
            TAG_ADAPTER: self.adapter,
            TAG_GROUP: group,
            TAG_UNIT: unit_id,
            TAG_REQUEST: request_id,
        }

    def owns(self, tags: dict[str, str]) -> bool:
        """Whether a unit with these tags belongs to this cluster and adapter (whole values compared)."""
        return tags.get(TAG_CLUSTER) == self.cluster_id and tags.get(TAG_ADAPTER) == self.adapter


def tag_arguments(tags: dict[str, str]) -> list[str]:
    """Tags as command-line markers: ``--tag scaler:cluster=ID --tag ...``."""
    return [part for key, value in tags.items() for part in (TAG_FLAG, f"{key}={value}")]


def tags_from_arguments(argv: list[str]) -> dict[str, str]:
    """The tags a command line carries (``--tag KEY=VALUE`` pairs); other arguments are ignored."""
    found: dict[str, str] = {}
    for flag, value in itertools.pairwise(argv):
        if flag == TAG_FLAG and "=" in value:
            key, _, tag = value.partition("=")
            found.setdefault(key, tag)
    return found


def id_file(state_dir: Path, scheduler: str) -> Path:
    """Where the generated id of the deployment whose scheduler is at ``scheduler`` is kept."""
    return state_dir / f"{CLUSTER_ID_FILE}.{re.sub(r'[^A-Za-z0-9.-]+', '-', scheduler.split('://')[-1])}"


def cluster_id(configured: str, state_dir: Path, scheduler: str) -> str:
    """The configured id, else the one kept in ``state_dir`` for this deployment (made there, once)."""
    if configured:
        return check_name("cluster_id", configured)
    path = id_file(state_dir, scheduler)
    try:
        return check_name(f"the cluster id kept in {path}", path.read_text().strip())
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_dir / f"{CLUSTER_ID_FILE}.{os.getpid()}.tmp"
    temporary.write_text(f"c{secrets.token_hex(6)}\n")
    try:
        os.link(temporary, path)  # atomic, and never over an id another adapter made a moment ago
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return check_name(f"the cluster id kept in {path}", path.read_text().strip())
