"""The Ray DAG API's edges: refusals by name, pickled graphs, nodes run once per execute, errors.

``tests/ray_programs/dag_api.py`` checks the API against Ray 2.60 on every path; these are the cases
a Ray program cannot check on both (refusals) or that need counting. Each is a program in its own
process: on the shim (never the installed Ray), or on the patched Ray in a loopback-only namespace.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.test_ray_compat import loopback_only, need_ray, run_watched

PRELUDE = """
import copy, sys, warnings
import cloudpickle
sys.modules["ray"] = None  # the compat API only: this never imports the installed Ray
from scaler.compat.ray.patch import install_shim
install_shim()
import ray
import ray.dag
from ray.dag import InputNode, MultiOutputNode
warnings.simplefilter("ignore", DeprecationWarning)


def refused(call, api):
    try:
        call()
    except NotImplementedError as exc:
        assert api in str(exc) and "not supported" in str(exc), (api, str(exc))
        return
    raise SystemExit(f"{api} must raise NotImplementedError")


def raises(error_type, call, text=""):
    try:
        call()
    except error_type as exc:
        assert text in str(exc), (text, str(exc))
        return exc
    raise SystemExit(f"expected {error_type.__name__}")


@ray.remote
def add(a, b):
    return a + b
"""


def run(code: str, timeout: float = 180) -> str:
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING", SCALER_ADDRESS="", RAY_ADDRESS="")
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + code], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout


def test_what_is_not_offered_refuses_by_name_and_graphs_pickle() -> None:
    out = run(
        """
with InputNode() as inp:
    graph = add.bind(inp, 1)
refused(lambda: graph.experimental_compile(), "ray.dag.DAGNode.experimental_compile")
refused(lambda: graph.with_tensor_transport("nccl"), "ray.dag.DAGNode.with_tensor_transport")
refused(lambda: inp.experimental_compile, "ray.dag.DAGNode.experimental_compile")
refused(lambda: graph.execute(1, _ray_cache_refs=True), "_ray_cache_refs")
assert not hasattr(graph, "experimental_compile") and not hasattr(graph, "clear_cache")
refused(lambda: ray.dag.plot(graph), "ray.dag.plot")
from ray.dag import DAGContext
refused(DAGContext, "ray.dag.DAGContext")
refused(lambda: ray.dag.CompiledDAG, "ray.dag.CompiledDAG")
from ray.dag.class_node import ClassNode
from ray.dag.function_node import FunctionNode
assert isinstance(graph, FunctionNode) and ray.dag.class_node.ClassNode is ClassNode

@ray.remote
class Box:
    def get(self):
        return 1

box = Box.bind()
method = box.get.bind()
for node in (graph, method, MultiOutputNode([graph, method])):
    again = cloudpickle.loads(cloudpickle.dumps(node))
    assert type(again) is type(node) and again.get_stable_uuid() == node.get_stable_uuid()
    assert copy.deepcopy(node).get_stable_uuid() == node.get_stable_uuid()
assert not hasattr(inp, "__wrapped__") and vars(inp)["input_attribute_nodes"] == {}, "dunders are no input parts"
raises(AttributeError, lambda: box.get.remote(), "Use .bind() instead")
raises(AttributeError, lambda: method.options, "options")
print("REFUSALS OK")
"""
    )
    assert "REFUSALS OK" in out


@pytest.mark.timeout(240)
def test_nodes_run_once_per_execute_and_errors_propagate() -> None:
    out = run(
        """
ray.init(num_cpus=2)

@ray.remote
class Tally:
    def __init__(self):
        self.hits = 0

    def hit(self, value):
        self.hits += 1
        return value

    def count(self):
        return self.hits


@ray.remote
def tick(tally, value):
    return ray.get(tally.hit.remote(value))


@ray.remote
def total(items):
    return sum(ray.get(items))


@ray.remote
def fail():
    raise KeyError("missing")


@ray.remote
class Broken:
    def __init__(self):
        raise RuntimeError("cannot start")

    def read(self):
        return 1


@ray.remote
class Ok:
    def explode(self, value):
        raise ValueError(f"exploded at {value}")


tally = Tally.remote()
with InputNode() as inp:
    shared = tick.bind(tally, inp)
    graph = MultiOutputNode([add.bind(shared, shared), total.bind([shared, shared]), shared])
for n in (1, 2):
    assert ray.get(graph.execute(n)) == [2 * n, 2 * n, n]
    assert ray.get(tally.count.remote()) == n, "one run of the shared node per execute"
single = tick.bind(tally, 5)
assert ray.get(single.execute()) == 5 and ray.get(single.execute()) == 5
assert ray.get(tally.count.remote()) == 4, "a bound node executed twice runs twice"

error = raises(ray.exceptions.RayTaskError, lambda: ray.get(add.bind(fail.bind(), 1).execute()), "missing")
assert isinstance(error, KeyError)
error = raises(ray.exceptions.RayTaskError, lambda: ray.get(Ok.bind().explode.bind(3).execute()), "exploded at 3")
assert isinstance(error, ValueError)
raises(ray.exceptions.ActorDiedError, lambda: ray.get(Broken.bind().read.bind().execute(), timeout=60))
refused(lambda: Ok.bind().explode.options(max_task_retries=1).bind(1).execute(), "max_task_retries")
print("EXECUTION OK")
"""
    )
    assert "EXECUTION OK" in out


def test_the_patch_path_gives_ours_and_never_loads_rays_own_dag() -> None:
    """Ray's ``ray.dag`` would import its compiled graphs; the patched Ray gives this layer's in its place."""
    need_ray()
    code = (
        "import sys\nimport ray\nimport scaler.compat.ray\nimport ray.dag\nfrom ray.dag.input_node import InputNode\n"
        "assert ray.dag.InputNode is InputNode and InputNode.__module__ == 'scaler.compat.ray.dag', InputNode\n"
        "assert ray.remote(len).bind([1]).__module__ == 'scaler.compat.ray.dag'\n"
        "assert not [name for name in sys.modules if name.startswith('ray.dag.') and 'scaler' not in "
        "sys.modules[name].__name__]\n"
        "assert 'ray.experimental.channel' not in sys.modules\n"
        "print('PATCHED DAG OK')\n"
    )
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", SCALER_ADDRESS="", RAY_ADDRESS="")
    result = run_watched(loopback_only([sys.executable, "-c", code]), env)
    assert result.returncode == 0 and "PATCHED DAG OK" in result.stdout, result.stderr[-3000:]
