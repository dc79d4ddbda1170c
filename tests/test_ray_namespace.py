"""Ray 2.60's public API, name by name: each works on Scaler or raises ``NotImplementedError`` naming it.

The names come from the installed Ray (``ray.__all__``, ``ray.util.__all__`` and the public names
of the modules Ray programs import in tasks), read inside a loopback-only network namespace without
initialising Ray. The walk then runs on the shim path (Ray blocked, outside any namespace) and on
the patch path (the installed Ray patched, inside the namespace), each on the driver and inside a
task, whose ``import ray`` must give the Ray the driver sees. A name *works* if what it gives is
Scaler's (or the standard library's, or one of Ray's modules the patch filled with ours: ``ray.util``,
``ray.actor``); it *refuses* if reaching or calling it raises
``NotImplementedError`` naming it. Anything of Ray's own leaking through is a failure: on the
patch path it would run the installed Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.test_ray_compat import ROOT, loopback_only, need_ray, run_watched

LISTED = (
    "ray.util.queue",
    "ray.util.multiprocessing",
    "ray.experimental.tqdm_ray",
    "ray.runtime_context",
    "ray.util.scheduling_strategies",
    "ray.util.placement_group",
    "ray.dag",
)

READ_NAMES = """
import importlib, json, sys
import ray, ray.util
names = {"ray": list(dict.fromkeys(ray.__all__)), "ray.util": list(ray.util.__all__)}
for module_name in sys.argv[1:]:
    module = importlib.import_module(module_name)
    names[module_name] = list(getattr(module, "__all__", None) or [
        name for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module_name
    ])
print(json.dumps({m: [n for n in found if not n.startswith("_")] for m, found in names.items()}))
"""

WALK = '''
import importlib, json, sys


def walk(names):
    """{"works": [...], "refuses": [...], "problems": [...]} for every name of every module in ``names``."""
    import ray as here

    works, refuses, problems = [], [], []
    for module_name, attributes in names.items():
        module = importlib.import_module(module_name)
        for name in attributes:
            api = f"{module_name}.{name}"
            try:
                value = getattr(module, name)
            except NotImplementedError as exc:
                (refuses if api in str(exc) else problems).append(api if api in str(exc) else f"{api}: {exc}")
                continue
            except Exception as exc:
                problems.append(f"{api}: reaching it raised {exc!r}")
                continue
            if getattr(value, "__scaler_unsupported__", None):
                try:
                    value()
                    problems.append(f"{api}: its stand-in returned")
                except NotImplementedError as exc:
                    (refuses if api in str(exc) else problems).append(api if api in str(exc) else f"{api}: {exc}")
                continue
            origin = value.__name__ if isinstance(value, type(json)) else getattr(value, "__module__", None) or ""
            if isinstance(value, type(json)) and getattr(value, "__scaler_patched__", False):
                works.append(api)  # Ray's module with our names put in (its public names are walked too)
            elif origin == "ray" or origin.startswith("ray."):
                problems.append(f"{api}: Ray's own {value!r} leaks through")
            else:
                works.append(api)
    return {"ray": [here.__name__, getattr(here, "__scaler_patched__", False)], "works": works,
            "refuses": refuses, "problems": problems}


def first_import():
    """The first thing a task does is import a Ray submodule (no ``import ray`` before it)."""
    from ray.util.queue import Queue

    return Queue.__module__


names = json.loads(sys.argv[1])
report = {"driver": walk(names)}
from scaler.compat.ray.session import init
from scaler.compat.ray import remote, get

init()
report["first_import"] = get(remote(first_import).remote(), timeout=120)
report["task"] = get(remote(walk).remote(names), timeout=120)
print("REPORT " + json.dumps(report))
'''

SHIM = "import sys\nsys.modules['ray'] = None\nfrom scaler.compat.ray.patch import install_shim\ninstall_shim()\n"
PATCH = "import ray\nimport scaler.compat.ray\n"

# What the brief asks to work: a sample that must be among the names that work, on every path.
MUST_WORK = {
    "ray.util.queue.Queue",
    "ray.util.queue.Empty",
    "ray.util.queue.Full",
    "ray.util.multiprocessing.Pool",
    "ray.experimental.tqdm_ray.tqdm",
    "ray.runtime_context.get_runtime_context",
    "ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy",
    "ray.util.scheduling_strategies.PlacementGroupSchedulingStrategy",
    "ray.util.ActorPool",
    "ray.util.placement_group.placement_group",
    "ray.util.placement_group",
    "ray.util.placement_group_table",
    "ray.util.remove_placement_group",
    "ray.PlacementGroupID",
    "ray.remote",
    "ray.ObjectRef",
    "ray.dag.InputNode",
    "ray.dag.MultiOutputNode",
    "ray.dag.DAGNode",
    "ray.dag.FunctionNode",
    "ray.dag.ClassNode",
    "ray.dag.ClassMethodNode",
    "ray.dag.InputAttributeNode",
}
MUST_REFUSE = {
    "ray.util.list_named_actors",
    "ray.data",
    "ray.timeline",
    "ray.get_gpu_ids",
    "ray.experimental.tqdm_ray.instance",
    "ray.dag.plot",
    "ray.dag.DAGContext",
}


@pytest.fixture(scope="module")
def public_names() -> dict[str, list[str]]:
    need_ray()
    result = run_watched(loopback_only([sys.executable, "-c", READ_NAMES, *LISTED]))
    assert result.returncode == 0, result.stderr[-3000:]
    names: dict[str, list[str]] = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(names["ray"]) > 40 and len(names["ray.util"]) > 20, names  # Ray 2.60's, not an empty list
    return names


def _walk(prelude: str, names: dict[str, list[str]], in_namespace: bool) -> dict[str, Any]:
    argv = [sys.executable, "-c", prelude + WALK, json.dumps(names)]
    env = dict(os.environ, SCALER_LOG_LEVEL="ERROR", SCALER_ADDRESS="", RAY_ADDRESS="", RAY_USAGE_STATS_ENABLED="0")
    result = run_watched(loopback_only(argv) if in_namespace else argv, env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert result.returncode == 0 and lines, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    report: dict[str, Any] = json.loads(lines[0][len("REPORT ") :])
    return report


def _check(report: dict[str, Any], names: dict[str, list[str]], ray_is: list[Any]) -> None:
    every = {f"{module}.{name}" for module, found in names.items() for name in found}
    for where in ("driver", "task"):
        seen = report[where]
        assert seen["ray"] == ray_is, (where, seen["ray"])
        assert seen["problems"] == [], (where, seen["problems"])
        assert set(seen["works"]) | set(seen["refuses"]) == every, where
        assert MUST_WORK <= set(seen["works"]), (where, MUST_WORK - set(seen["works"]))
        assert MUST_REFUSE <= set(seen["refuses"]), (where, MUST_REFUSE - set(seen["refuses"]))
    assert report["task"]["works"] == report["driver"]["works"], "a task sees the names the driver sees"
    assert report["first_import"] == "scaler.compat.ray.util_queue"


@pytest.mark.timeout(300)
def test_every_public_name_works_or_refuses_by_name_on_the_shim_path(public_names: dict[str, list[str]]) -> None:
    _check(_walk(SHIM, public_names, in_namespace=False), public_names, ["scaler.compat.ray", False])


@pytest.mark.timeout(300)
def test_every_public_name_works_or_refuses_by_name_on_the_patch_path(public_names: dict[str, list[str]]) -> None:
    _check(_walk(PATCH, public_names, in_namespace=True), public_names, ["ray", True])


FOCUSED = """
import queue


def refused(call, api):
    try:
        call()
    except NotImplementedError as exc:
        assert api in str(exc), (api, str(exc))
        return
    raise SystemExit(f"{api} must raise NotImplementedError")


import ray.data
from ray.util.scheduling_strategies import (
    In,
    NodeAffinitySchedulingStrategy,
    NodeLabelSchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)
from ray.util.placement_group import get_current_placement_group, PlacementGroup

refused(lambda: __import__("ray.data").data.range(3), "ray.data")
try:
    from ray.data import Dataset  # noqa: F401
    raise SystemExit("from ray.data import ... must refuse")
except NotImplementedError as exc:
    assert "ray.data.Dataset" in str(exc)
import ray.util.collective as collective
refused(lambda: collective.allreduce, "ray.util.collective.allreduce")
refused(lambda: ray.util.collective, "ray.util.collective")
refused(
    lambda: ray.get_runtime_context().get_runtime_env_string(),
    "ray.runtime_context.RuntimeContext.get_runtime_env_string",
)
assert ray.get_runtime_context().get_worker_id()
refused(lambda: ray.util.queue.LifoQueue, "ray.util.queue.LifoQueue")
assert get_current_placement_group() is None and PlacementGroup.empty().is_empty
refused(lambda: ray.util.multiprocessing.Pool(1, maxtasksperchild=3), "maxtasksperchild")
affinity = NodeAffinitySchedulingStrategy(node_id="n1", soft=True)
assert "node_id='n1'" in repr(affinity) and repr(In("a", "b")) == "In('a', 'b')"
labels = NodeLabelSchedulingStrategy(hard={"zone": In("a")})
refused(lambda: ray.remote(scheduling_strategy=labels)(abs), "NodeLabelSchedulingStrategy")
assert ray.remote(scheduling_strategy=affinity)(abs)
assert ray.remote(lambda: 1).options(scheduling_strategy=PlacementGroupSchedulingStrategy(None))
refused(lambda: ray.remote(scheduling_strategy=labels)(type("A", (), {})), "NodeLabelSchedulingStrategy")
assert ray.util.log_once("k") and not ray.util.log_once("k")
ray.util.disable_log_once_globally()
assert not ray.util.log_once("other")
assert issubclass(ray.util.queue.Empty, queue.Empty) and issubclass(ray.util.queue.Full, queue.Full)
assert ray.ObjectID is ray.ObjectRef and (ray.SCRIPT_MODE, ray.WORKER_MODE) == (0, 1)
print("FOCUSED OK")
"""


def test_focused_refusals_and_small_apis_on_the_shim_path() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SHIM + "import ray, ray.util.queue, ray.util.multiprocessing\n" + FOCUSED],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=dict(os.environ, SCALER_ADDRESS="", RAY_ADDRESS=""),
    )
    assert result.returncode == 0 and "FOCUSED OK" in result.stdout, result.stderr[-3000:]


def test_focused_refusals_and_small_apis_on_the_patch_path() -> None:
    need_ray()
    code = PATCH + "import ray.util.queue, ray.util.multiprocessing\n" + FOCUSED
    result = run_watched(loopback_only([sys.executable, "-c", code]), dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
    assert result.returncode == 0 and "FOCUSED OK" in result.stdout, result.stderr[-3000:]


@pytest.mark.timeout(120)
def test_scaler_ray_shim_makes_a_worker_give_the_shim_even_with_ray_installed() -> None:
    """The variable a shim driver's local cluster sets: its tasks never load the installed Ray."""
    need_ray()
    code = (
        "from scaler.compat.ray_finder import install_finder\ninstall_finder()\n"  # as a task process does
        "import ray\nimport ray.util.queue\n"
        "print(ray.__name__, ray.util.queue.Queue.__module__, 'ray._private' in __import__('sys').modules)\n"
    )
    env = dict(os.environ, SCALER_RAY_SHIM="1")
    result = run_watched(loopback_only([sys.executable, "-c", code]), env)
    assert result.stdout.split() == ["scaler.compat.ray", "scaler.compat.ray.util_queue", "False"], result.stderr
    result = run_watched(loopback_only([sys.executable, "-c", code]), dict(os.environ, SCALER_RAY_SHIM=""))
    assert result.stdout.split() == ["ray", "scaler.compat.ray.util_queue", "True"], result.stderr
