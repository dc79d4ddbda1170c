# A Ray program: the classic DAG API. bind on functions, actor classes and actor methods (of a bound
# actor and of a live handle), InputNode and its parts, MultiOutputNode, options, nodes nested in
# arguments, a shared node running once per execute, errors, and DAGs built or run inside tasks.
import warnings

import ray
import ray.dag
from ray.dag import ClassMethodNode, ClassNode, DAGNode, FunctionNode, InputAttributeNode, InputNode, MultiOutputNode
from ray.dag.input_node import InputNode as InputNodeByModule

ray.init()


@ray.remote
def add(a, b):
    return a + b


@ray.remote
def double(x):
    return 2 * x


@ray.remote(num_returns=2)
def halves(x):
    return x // 2, x - x // 2


@ray.remote
def total(items, mapping):
    """Nodes nested in arguments arrive as refs, as refs nested in .remote's arguments do."""
    assert all(isinstance(item, ray.ObjectRef) for item in items), items
    assert isinstance(mapping["ref"], ray.ObjectRef), mapping
    return sum(ray.get(items)) + ray.get(mapping["ref"]) + mapping["input"]


@ray.remote
def fail(x):
    raise ValueError(f"no good: {x}")


@ray.remote
def run_inside(n):
    from ray.dag import InputNode

    with InputNode() as inner:
        graph = add.bind(double.bind(inner), inner)
    return ray.get(graph.execute(n))


@ray.remote
def run_given(graph, n):
    return ray.get(graph.execute(n))


@ray.remote
class Counter:
    def __init__(self, start):
        self.value = start

    def add(self, amount):
        self.value += amount
        return self.value

    def read(self):
        return self.value

    @ray.method(num_returns=2)
    def pair(self):
        return self.value, -self.value


class Both(dict):
    def __getattr__(self, key):
        return self[key]


def raises(error_type, call, text=""):
    try:
        call()
    except error_type as exc:
        assert text in str(exc), (text, str(exc))
        return exc
    raise SystemExit(f"expected {error_type.__name__}")


assert ray.dag.InputNode is InputNode is InputNodeByModule

# Functions and the input: execute runs the graph and gives the output's ref.
with InputNode() as inp:
    graph = add.bind(double.bind(inp[0]), inp[1])
assert isinstance(graph, FunctionNode) and isinstance(graph, DAGNode)
assert isinstance(inp[0], InputAttributeNode) and inp[0] is inp[0]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ref = graph.execute(3, 4)
assert any("execute() is deprecated" in str(w.message) for w in caught), [str(w.message) for w in caught]
warnings.simplefilter("ignore", DeprecationWarning)
assert isinstance(ref, ray.ObjectRef) and ray.get(ref) == 10
assert ray.get(graph.execute(5, 1)) == 11, "a graph runs again on each execute"
assert ray.get(graph.execute([7, 2])) == 16, "one argument: inp[i] is its item"

with InputNode() as inp:
    whole = double.bind(inp)
    keyed = add.bind(inp.x, inp["y"])
assert ray.get(whole.execute(21)) == 42
assert ray.get(keyed.execute(x=1, y=2)) == 3, "keyword arguments of execute: inp.key and inp['key']"
assert ray.get(keyed.execute(Both(x=10, y=20))) == 30, "one argument: its attribute and its item"

# MultiOutputNode: a list of refs. A node used twice runs once per execute; num_returns=2 gives two refs.
with InputNode() as inp:
    shared = double.bind(inp)
    outputs = MultiOutputNode([shared, add.bind(shared, 1), halves.bind(inp), "plain"])
refs = outputs.execute(10)
assert isinstance(refs, list) and len(refs) == 4, refs
assert ray.get(refs[:2]) == [20, 21] and ray.get(refs[2]) == [5, 5] and refs[3] == "plain"
assert ray.get(halves.options(num_returns=1).bind(9).execute()) == (4, 5), "options apply to the bound call"

# Nodes nested in lists and dicts of arguments.
with InputNode() as inp:
    nested = total.bind([double.bind(inp), add.bind(inp, 1)], {"ref": double.bind(1), "input": inp})
assert ray.get(nested.execute(3)) == 6 + 4 + 2 + 3

# An error in a node reaches ray.get of the output as the task's error.
with InputNode() as inp:
    broken = add.bind(fail.bind(inp), 1)
error = raises(ray.exceptions.RayTaskError, lambda: ray.get(broken.execute(7)), "no good: 7")
assert isinstance(error, ValueError)

# Actors: a ClassNode is created once per execute; its method calls run in the order they were bound,
# each after the ones bound before it, even those the output does not use.
with InputNode() as inp:
    counter = Counter.bind(10)
    first = counter.add.bind(inp)
    second = counter.add.bind(5)
    last = counter.read.bind()
    pair = counter.pair.bind()
    pair_as_one = counter.pair.options(num_returns=1).bind()
    fed = Counter.bind(1).add.bind(double.bind(inp))
assert isinstance(counter, ClassNode) and isinstance(last, ClassMethodNode)
assert ray.get(last.execute(1)) == 16
assert ray.get(last.execute(1)) == 16, "a new actor for each execute"
assert ray.get(MultiOutputNode([first, second, last]).execute(2)) == [12, 17, 17]
assert ray.get(pair.execute(1)) == [16, -16]
assert ray.get(pair_as_one.execute(1)) == (16, -16)
assert ray.get(fed.execute(3)) == 7
handle = Counter.bind(5).execute()
assert ray.get(handle.add.remote(1)) == 6, "executing a ClassNode gives the actor's handle"
named = Counter.options(name="dag-named").bind(7).execute()
assert ray.get(ray.get_actor("dag-named").read.remote()) == 7 and ray.get_actor("dag-named") == named

# A live actor's methods: a shared call runs once per execute.
live = Counter.remote(0)
with InputNode() as inp:
    bump = live.add.bind(inp)
    both = add.bind(bump, bump)
assert isinstance(bump, ClassMethodNode)
assert ray.get(both.execute(5)) == 10
assert ray.get(both.execute(5)) == 20
assert ray.get(live.read.remote()) == 10
plus, minus = live.pair.bind()
assert ray.get(MultiOutputNode([plus, minus]).execute()) == [10, -10]
assert ray.get(live.pair.options(num_returns=1).bind().execute()) == (10, -10)

# Inside tasks: a DAG built there, and one built here and passed in.
assert ray.get(run_inside.remote(4)) == 12
assert ray.get(run_given.remote(graph, [1, 1])) == 3

# Mistakes Ray reports the same way.
raises(AttributeError, lambda: graph.bind(1), ".bind() cannot be used again")
raises(AttributeError, lambda: graph.remote(), "use .execute()")
raises(AttributeError, lambda: counter.no_such_method)
raises(ValueError, lambda: InputNode(1), "InputNode should not take any args or kwargs")
raises(ValueError, lambda: MultiOutputNode(shared), "Invalid input type")
with InputNode() as inp:
    raises(ValueError, lambda: Counter.bind(inp), "InputNode")
raises(AssertionError, lambda: double.bind(InputNode()).execute(1), "context manager")
with InputNode() as one, InputNode() as other:
    two_inputs = add.bind(one, other)
raises(AssertionError, lambda: two_inputs.execute(1), "one unique InputNode")
print("PASSED dag_api")
