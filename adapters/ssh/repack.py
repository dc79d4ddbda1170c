"""scaler's dependencies as wheels made from what this interpreter has installed, without a package index.

An offline bootstrap (``offline_bootstrap = true``) sends a bare host every wheel scaler needs, so
the host installs with ``--no-index``. Asking pip for those wheels would reach a package index from
here; instead each installed dependency (scaler's ``Requires-Dist``, followed transitively, markers
evaluated for this interpreter) is packed back into a wheel from its installed files, as listed in
its ``RECORD``, under the tag its own ``WHEEL`` file records. The host must therefore match this
machine's Python version and platform (the docs say so). Files outside the package's directory
(console scripts in ``bin/``) are left out: pip writes scripts again from ``entry_points.txt``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement  # the ssh extra brings it

SKIPPED = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")  # written by the installer, or made here


class RepackError(RuntimeError):
    """A dependency is not installed here, or not from a wheel, so it cannot be sent offline."""


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str) -> list[metadata.Distribution]:
    """The installed distributions ``root`` needs at run time (no extras), itself excluded, in a stable order."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise RepackError(f"offline bootstrap: {name} is not installed here, so it cannot be sent") from None
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            key = normalized(requirement.name)
            if key not in seen and key != normalized(root):
                seen[key] = metadata.distribution(requirement.name)
                todo.append(requirement.name)
    return [seen[key] for key in sorted(seen)]


def _tag(dist: metadata.Distribution) -> str:
    text = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]
    if not tags:
        raise RepackError(f"offline bootstrap: {dist.metadata['Name']} was not installed from a wheel")
    return tags[0]


def repack(dist: metadata.Distribution, directory: Path) -> Path:
    """``dist`` as a wheel in ``directory`` (its name carries the installed tag); returns its path."""
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    path = directory / f"{name}-{dist.version}-{_tag(dist)}.whl"
    if path.exists():
        return path
    rows: list[tuple[str, str, str]] = []
    record = ""
    partial = path.with_suffix(".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as wheel:
        for entry in sorted(dist.files or [], key=str):
            relative = str(entry)
            if relative.startswith("..") or "__pycache__" in relative:
                continue
            if relative.endswith(".dist-info/RECORD"):
                record = relative
            if Path(relative).name in SKIPPED and ".dist-info/" in relative:
                continue
            data = Path(str(dist.locate_file(entry))).read_bytes()
            info = zipfile.ZipInfo(relative, (1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            wheel.writestr(info, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append((relative, f"sha256={digest}", str(len(data))))
        if not record:
            raise RepackError(f"offline bootstrap: {dist.metadata['Name']} has no RECORD")
        listing = io.StringIO()
        csv.writer(listing, lineterminator="\n").writerows([*rows, (record, "", "")])
        wheel.writestr(zipfile.ZipInfo(record, (1980, 1, 1, 0, 0, 0)), listing.getvalue())
    partial.rename(path)
    return path
