"""Make a bare host able to run Scaler workers: a venv on the host with this very build of scaler (DESIGN §4, SSH).

A host in the SSH inventory may have only ``python3``, or a scaler of another version or build than the
scheduler's; workers of another build may not speak its protocol. With bootstrap on, the provider
sends this package as a wheel built here and installs it into a venv on the host, once per build:

- ``bundle(cache_dir, offline=False) -> Bundle`` builds scaler's wheel from the source tree it is
  installed from (editable or a checkout), once per source state: the cache is keyed by a digest of the
  tree, and the wheel's timestamps are fixed, so the same tree gives the same bytes. ``offline=True``
  also sends scaler's runtime dependencies as installed here, repacked as wheels (``repack``: no
  package index is asked; the host must match this machine's Python and platform), so the host needs
  no package index either. ``Bundle.wheels[0]`` is
  scaler's; ``Bundle.build_id`` is a sha256 over all the wheels' names and bytes.
- ``ensure(remote, venv, python, bundle, timeout=600.0) -> str`` is idempotent and returns the absolute
  path of the venv's python on the host. In the steady state it runs one remote command (is
  ``<venv>/bin/python`` there, does ``<venv>/.scaler-build`` hold ``build_id``?). Otherwise it puts the
  wheels into a fresh 0700 staging directory beside the venv and, under a lock, creates the venv with
  ``<python> -m venv`` if missing, replaces scaler with the wheel (``pip uninstall`` first: a build at
  the same version would else be "already satisfied"), writes the marker, then removes the staging dir.

Paths: ``~/x`` and relative paths are taken from the remote user's ``$HOME`` (asked once, in the first
command); every path is shell-quoted. Commands are POSIX ``sh -c`` lines, whatever the login shell.

The lock: ``<venv>.lock``, held with ``fcntl.flock`` by the host's ``python`` around the install
(so no ``flock(1)`` is needed, and the kernel drops it if the holder dies). A second adapter
bootstrapping the same host waits for it, then finds the marker and installs nothing.

Errors: a failing step on the host raises ``RemoteCommandError`` naming the host, the step and its
stderr; a host without ``python``, or scaler installed here without a source tree, raise
``ConfigurationError`` (retrying cannot help); a failing local build raises ``BuildError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scaler.adapters.errors import ConfigurationError
from scaler.adapters.ssh import repack
from scaler.adapters.ssh.channel import Completed, Remote, RemoteCommandError

MARKER = ".scaler-build"
SKIPPED = {"build", "dist", "__pycache__", "node_modules"}  # besides dot-directories and *.egg-info
WHEEL_EPOCH = "315532800"  # 1980-01-01, the earliest zip time: rebuilding one tree gives the same wheel
LOCKER = (
    "import fcntl,subprocess,sys;f=open(sys.argv[1],'a');fcntl.flock(f,fcntl.LOCK_EX);"
    "sys.exit(subprocess.call(['/bin/sh','-c',sys.argv[2]]))"
)
STEPS = {
    11: "creating the venv",
    12: "removing the old scaler (pip uninstall)",
    13: "installing scaler (pip install)",
    14: f"writing {MARKER}",
}


class BuildError(RuntimeError):
    """Building scaler's wheel (or collecting its dependencies) on this machine failed."""


@dataclass(frozen=True)
class Bundle:
    wheels: tuple[Path, ...]  # scaler's first, then its dependencies' when offline
    build_id: str  # sha256 over the wheels' names and bytes
    offline: bool = False  # install with --no-index from the wheels alone


def source_root() -> Path:
    """The project directory scaler is installed from; ``ConfigurationError`` when it came from a wheel."""
    import scaler

    package = Path(scaler.__file__ or "").resolve().parent
    pyproject = package.parent / "pyproject.toml"
    if pyproject.is_file() and re.search(r'(?m)^name\s*=\s*"scaler"\s*$', pyproject.read_text()):
        return package.parent
    raise ConfigurationError(
        f"bootstrap builds the wheel it sends from scaler's source tree, but scaler is installed at {package} "
        "without one: install scaler on the hosts by hand and turn bootstrap off, or install scaler here from "
        "a checkout (pip install -e), or fetch wheels with `pip download scaler -d DIR` for the hosts"
    )


def source_files(root: Path, skip: Path | None = None) -> list[Path]:
    """The files of the tree that the wheel is built from, in a stable order (caches and builds left out)."""
    found: list[Path] = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(
            name
            for name in subdirectories
            if not (name.startswith(".") or name in SKIPPED or name.endswith(".egg-info"))
            and Path(directory, name).resolve() != skip
        )
        found += [Path(directory, name) for name in sorted(names) if not name.endswith(".pyc")]
    return found


def source_digest(root: Path, skip: Path | None = None) -> str:
    digest = hashlib.sha256()
    for path in source_files(root, skip):
        digest.update(f"{path.relative_to(root)}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def pip(arguments: list[str], what: str) -> None:
    environment = {**os.environ, "SOURCE_DATE_EPOCH": WHEEL_EPOCH}
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *arguments]
    done = subprocess.run(command, capture_output=True, env=environment, timeout=900)
    if done.returncode != 0:
        raise BuildError(f"bootstrap: {what} failed: {done.stderr.decode(errors='replace').strip()[-2000:]}")


def publish(cache_dir: Path, name: str, fill: list[str], what: str) -> Path:
    """``cache_dir/name``, made by ``pip fill -w DIR`` into a temporary directory renamed into place, so a
    concurrent builder or a crash never leaves a half-filled entry."""
    target = cache_dir / name
    if target.is_dir():
        return target
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as scratch:
        pip([*fill, "-w", str(Path(scratch, "out"))], what)
        try:
            os.rename(Path(scratch, "out"), target)
        except OSError:
            if not target.is_dir():
                raise
    return target


def bundle(cache_dir: Path, offline: bool = False) -> Bundle:
    """scaler's wheel built from its source tree (and, offline, its dependencies' wheels), cached per tree state."""
    root = source_root()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = source_digest(root, cache_dir.resolve())[:24]
    if not (cache_dir / key).is_dir():
        with tempfile.TemporaryDirectory(prefix="scaler-source-") as copy:
            # Built from a copy: setuptools would leave build/ in the tree, and ship stale files from it.
            for path in source_files(root, cache_dir.resolve()):
                Path(copy, path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, Path(copy, path.relative_to(root)))
            offline_build = ["wheel", "--no-deps", "--no-build-isolation", "--no-index", copy]
            try:  # the installed build backend (the ssh extra brings setuptools and wheel): no network needed
                publish(cache_dir, key, offline_build, "building scaler's wheel")
            except BuildError:  # no backend here: pip fetches one (pip's cache, or the index)
                publish(cache_dir, key, ["wheel", "--no-deps", copy], "building scaler's wheel")
    own = sorted((cache_dir / key).glob("scaler-*.whl"))
    if len(own) != 1:
        raise BuildError(f"bootstrap: expected one scaler wheel in {cache_dir / key}, found {len(own)}")
    wheels = [own[0]]
    if offline:  # this interpreter's installed dependencies, repacked: no package index is asked
        deps = cache_dir / "installed"
        deps.mkdir(exist_ok=True)
        try:
            wheels += [repack.repack(dist, deps) for dist in repack.closure("scaler")]
        except repack.RepackError as exc:
            raise BuildError(str(exc)) from exc
    digest = hashlib.sha256()
    for wheel in wheels:
        digest.update(f"{wheel.name}\0".encode())
        digest.update(wheel.read_bytes())
    return Bundle(tuple(wheels), digest.hexdigest(), offline)


def shell_path(path: str) -> str:
    """``path`` quoted for sh, with ``~/`` (or a relative path) taken from ``$HOME`` on the host."""
    if path.startswith("~") and path != "~" and not path.startswith("~/"):
        raise ConfigurationError(f"bootstrap: {path!r}: only ~/ paths (the login user's home) are supported")
    if path.startswith("/"):
        return shlex.quote(path)
    rest = path[1:].lstrip("/") if path.startswith("~") else path
    return '"$HOME"' + (f"/{shlex.quote(rest)}" if rest else "")


def absolute(path: str, home: str) -> str:
    if path.startswith("/"):
        return path
    rest = path[1:].lstrip("/") if path.startswith("~") else path
    return f"{home.rstrip('/')}/{rest}" if rest else home


def checked(remote: Remote, command: str, what: str, timeout: float) -> Completed:
    done = remote.run(f"sh -c {shlex.quote(command)}", timeout=timeout)
    if done.rc != 0:
        raise RemoteCommandError(remote.name, what, done)
    return done


def install_script(venv: str, python: str, stage: str, bundle: Bundle) -> str:
    """The locked part of an install (absolute paths); exits with a code of ``STEPS`` on failure."""
    v, py, build = shlex.quote(venv), shlex.quote(python), shlex.quote(bundle.build_id)
    venv_python = shlex.quote(f"{venv}/bin/python")
    index = ["--no-index", "--find-links", stage] if bundle.offline else []
    wheel = f"{stage}/{bundle.wheels[0].name}"
    pip = f"{venv_python} -m pip --disable-pip-version-check --no-input"
    return "; ".join(
        [
            f'if [ -x {venv_python} ] && [ "$(cat {v}/{MARKER} 2>/dev/null)" = {build} ]; then exit 0; fi',
            f"[ -x {venv_python} ] || {py} -m venv {v} 1>&2 || exit 11",
            f"rm -f {v}/{MARKER}",
            f"{pip} uninstall --yes scaler 1>&2 || exit 12",
            f"{pip} install --upgrade {shlex.join([*index, wheel])} 1>&2 || exit 13",
            f"printf %s {build} > {v}/{MARKER}.new && mv {v}/{MARKER}.new {v}/{MARKER} || exit 14",
        ]
    )


def ensure(remote: Remote, venv: str, python: str, bundle: Bundle, timeout: float = 600.0) -> str:
    """Make ``venv`` on ``remote`` hold ``bundle``'s build (idempotent); returns the venv's python, absolute."""
    v, py, build = shell_path(venv), shlex.quote(python), shlex.quote(bundle.build_id)
    probe = (
        f'printf "%s\\n" "$HOME"; if [ -x {v}/bin/python ] && [ "$(cat {v}/{MARKER} 2>/dev/null)" = {build} ]; '
        f"then echo ready; elif command -v {py} >/dev/null 2>&1; then echo install; else echo no-python; fi"
    )
    done = checked(remote, probe, "checking the venv", min(timeout, 60.0))
    lines = done.stdout.decode(errors="replace").splitlines()
    if len(lines) < 2 or not lines[-2].startswith("/"):  # last two lines: a noisy login script may print before
        raise RemoteCommandError(remote.name, "checking the venv: unexpected output", Completed(1, b"", done.stdout))
    home, state = lines[-2], lines[-1]
    target = absolute(venv, home).rstrip("/")
    if state == "ready":
        return f"{target}/bin/python"
    if state == "no-python":
        raise ConfigurationError(f"host {remote.name}: {python} not found; set python= to the host's Python 3")
    stage = f"{target}.stage-{secrets.token_hex(6)}"
    parent = os.path.dirname(target) or "/"
    checked(remote, f"umask 077 && mkdir -p {shlex.quote(parent)} && mkdir {shlex.quote(stage)}", "staging", 60.0)
    try:
        for wheel in bundle.wheels:
            remote.put(f"{stage}/{wheel.name}", wheel.read_bytes(), 0o600)
        locked = f"{py} -c {shlex.quote(LOCKER)} {shlex.quote(target + '.lock')} "
        locked += shlex.quote(install_script(target, python, stage, bundle))
        done = remote.run(f"sh -c {shlex.quote(locked)}", timeout=timeout)
        if done.rc != 0:
            raise RemoteCommandError(remote.name, STEPS.get(done.rc, f"installing under {target}.lock"), done)
    finally:
        with contextlib.suppress(Exception):  # best effort: an error above says more than this one would
            remote.run(f"rm -rf {shlex.quote(stage)}", timeout=60.0)
    return f"{target}/bin/python"
