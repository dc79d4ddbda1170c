"""``ray.dag``: Ray 2.60's classic DAG API, as lazy calls on the compat layer's tasks and actors.

Ray programs build task graphs with ``f.bind(...)``, ``Cls.bind(...)``, ``node.method.bind(...)``
and ``handle.method.bind(...)``, then run them with ``execute``; Ray implements that in ``ray.dag``,
which the patch never loads (it would pull in compiled graphs). So the API lives here, apart from
the call paths it drives: a node only records a call, and ``execute`` makes each one through the
layer's own ``.remote`` (``RemoteFunction``, ``ActorClass``, ``ActorMethod``), so options, retries,
namespaces, refs and errors are those of ordinary calls. ``execute`` walks the graph bottom-up, in
Ray's order (positional arguments, keyword arguments, then a method's actor and the method bound
before it on the same ``ClassNode``), and puts in place of every node its result: an ``ObjectRef``
(a top-level one arrives as its value, a nested one as a ref, as for any ``.remote``), an actor
handle for a ``ClassNode``, the input for an ``InputNode``. Results are kept by node for one
``execute`` only, so a node several others use runs once per ``execute``, and again on the next
(a ``ClassNode``: a new actor each time, as in Ray). Nodes are found in lists, tuples, dicts and
sets of arguments (Ray also looks inside other objects it can pickle). What is not offered (compiled
graphs, ``plot``, tensor transports, the cache of refs) raises ``NotImplementedError`` naming it.
"""

from __future__ import annotations

import uuid
import warnings
from typing import TYPE_CHECKING, Any

from scaler.compat.ray import generators as gen
from scaler.compat.ray.unsupported import UnsupportedAPIError, module_getattr, stand_ins

if TYPE_CHECKING:
    from scaler.compat.ray.actors import ActorClass, ActorMethod
    from scaler.compat.ray.remote_function import RemoteFunction

PARENT_CLASS_NODE_KEY = "parent_class_node"
PREV_CLASS_METHOD_CALL_KEY = "prev_class_method_call"
BIND_INDEX_KEY = "bind_index"
IS_CLASS_METHOD_OUTPUT_KEY = "is_class_method_output"
COLLECTIVE_OPERATION_KEY = "collective_operation"
DAGNODE_TYPE_KEY = "__dag_node_type__"
IN_CONTEXT_MANAGER = "__in_context_manager__"
# DAGNode's public names Scaler lacks: compiled graphs, tensor transports, the cache of refs, graph walks.
_COMPILED = ("experimental_compile", "with_tensor_transport", "type_hint")
_CACHE = ("get_object_refs_from_last_execute", "clear_cache", "cache_from_last_execute")
REFUSED = frozenset((*_COMPILED, *_CACHE, "apply_recursive", "apply_functional", "traverse_and_apply"))
DAG_CALLABLES = ("CollectiveOutputNode", "DAGContext", "DAGOperationFuture", "GPUFuture", "plot")


class DAGNode:
    """A node of a Ray task graph: a call ``.bind`` recorded, which ``execute`` makes."""

    def __init__(
        self, args: Any, kwargs: dict[str, Any], options: dict[str, Any], other_args_to_resolve: dict[str, Any]
    ) -> None:
        self._bound_args: Any = args or []
        self._bound_kwargs = kwargs
        self._bound_options = options
        self._bound_other_args_to_resolve = other_args_to_resolve
        self._stable_uuid = uuid.uuid4().hex

    def get_args(self) -> Any:
        return self._bound_args

    def get_kwargs(self) -> dict[str, Any]:
        return dict(self._bound_kwargs)

    def get_options(self) -> dict[str, Any]:
        return dict(self._bound_options)

    def get_other_args_to_resolve(self) -> dict[str, Any]:
        return dict(self._bound_other_args_to_resolve)

    def get_stable_uuid(self) -> str:
        return self._stable_uuid

    def execute(self, *args: Any, _ray_cache_refs: bool = False, **kwargs: Any) -> Any:
        """Run the graph below this node with this input: its ``ObjectRef`` (a list of them for
        ``MultiOutputNode``, an actor handle for ``ClassNode``)."""
        warnings.warn(
            "DAGNode.execute() is deprecated and will be removed in a future release.", DeprecationWarning, stacklevel=2
        )
        if _ray_cache_refs:
            raise NotImplementedError("ray.dag.DAGNode.execute(_ray_cache_refs=True) is not supported by Scaler")
        return _Execution(args, kwargs).result(self)

    def _children(self) -> list[DAGNode]:
        """The nodes this one's call needs, in the order Ray runs them, each once."""
        found: dict[str, DAGNode] = {}
        for part in (self._bound_args, self._bound_kwargs, self._bound_other_args_to_resolve):
            _find_nodes(part, found)
        return list(found.values())

    def _call(self, execution: _Execution, args: Any, kwargs: dict[str, Any], other: dict[str, Any]) -> Any:
        """Make this node's call, its arguments' nodes replaced by their results."""
        raise NotImplementedError(f"{type(self).__name__} cannot be executed")

    def __getattr__(self, name: str) -> Any:
        if name in REFUSED:
            raise UnsupportedAPIError(f"ray.dag.DAGNode.{name} is not supported by Scaler")
        if name == "bind":
            raise AttributeError(f".bind() cannot be used again on {type(self)} ")
        if name == "remote":
            raise AttributeError(
                f".remote() cannot be used on {type(self)}. To execute the task graph for this node, use .execute()."
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"({type(self).__name__}, {self._stable_uuid})"


class _Execution:
    """One ``execute``: its input, and each node's result by node."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.args = args
        self.kwargs = kwargs
        self.results: dict[str, Any] = {}
        self.input_node: str | None = None

    def result(self, node: DAGNode) -> Any:
        key = node._stable_uuid
        if key not in self.results:
            for child in node._children():
                self.result(child)
            if isinstance(node, InputNode):
                if self.input_node is not None and self.input_node != key:
                    raise AssertionError("Each DAG should only have one unique InputNode.")
                self.input_node = key
            args = _replace_nodes(node._bound_args, self.results)
            kwargs = _replace_nodes(node._bound_kwargs, self.results)
            other = _replace_nodes(node._bound_other_args_to_resolve, self.results)
            self.results[key] = node._call(self, args, kwargs, other)
        return self.results[key]


def _is_named_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def _find_nodes(value: Any, found: dict[str, DAGNode]) -> None:
    """Add the nodes ``value`` is or holds in lists, tuples, dicts and sets to ``found``, in order."""
    if isinstance(value, DAGNode):
        found.setdefault(value._stable_uuid, value)
    elif type(value) in (list, tuple, set, frozenset, dict) or _is_named_tuple(value):
        for item in value.values() if type(value) is dict else value:
            _find_nodes(item, found)


def _replace_nodes(value: Any, results: dict[str, Any]) -> Any:
    """``value`` with every node it is or holds (as ``_find_nodes`` finds them) replaced by its result."""
    if isinstance(value, DAGNode):
        return results[value._stable_uuid]
    if type(value) is dict:
        replaced = {key: _replace_nodes(item, results) for key, item in value.items()}
        return value if all(replaced[key] is value[key] for key in value) else replaced
    if type(value) in (list, tuple, set, frozenset) or _is_named_tuple(value):
        items = [_replace_nodes(item, results) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(*items) if _is_named_tuple(value) else type(value)(items)
    return value


class FunctionNode(DAGNode):
    """A remote function's call: ``f.bind(...)``."""

    def __init__(self, remote_function: RemoteFunction, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._remote_function = remote_function
        self._body = remote_function._function
        super().__init__(args, kwargs, dict(remote_function._options), {})

    def _call(self, execution: _Execution, args: Any, kwargs: dict[str, Any], other: dict[str, Any]) -> Any:
        return self._remote_function.remote(*args, **kwargs)


class ClassNode(DAGNode):
    """An actor's creation: ``Cls.bind(...)``; ``node.method.bind(...)`` calls a method of it."""

    def __init__(self, actor_class: ActorClass, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._actor_class = actor_class
        self._body = actor_class._cls
        self._last_call: ClassMethodNode | None = None
        super().__init__(args, kwargs, dict(actor_class._options), {})
        if any(isinstance(child, InputNode) for child in self._children()):
            raise ValueError(
                "InputNode handles user dynamic input the DAG, and cannot be used as args, kwargs, or "
                "other_args_to_resolve in ClassNode constructor because it is not available at class "
                "construction or binding time."
            )

    def _call(self, execution: _Execution, args: Any, kwargs: dict[str, Any], other: dict[str, Any]) -> Any:
        return self._actor_class.remote(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        body = self.__dict__.get("_body")
        if body is None or name.startswith("__") or name in REFUSED:
            return super().__getattr__(name)
        if name == "bind" and not hasattr(body, "bind"):
            raise AttributeError(f".bind() cannot be used again on {type(self)} ")
        getattr(body, name)  # no such method: the class's own AttributeError
        return _UnboundClassMethodNode(self, name, {})


class _UnboundClassMethodNode:
    """``class_node.method``: ``.bind(...)`` records a call of it, after the ones bound before."""

    def __init__(self, actor: ClassNode, method_name: str, options: dict[str, Any]) -> None:
        self._actor = actor
        self._method_name = method_name
        self._options = options

    def bind(self, *args: Any, **kwargs: Any) -> ClassMethodNode:
        other = {PARENT_CLASS_NODE_KEY: self._actor, PREV_CLASS_METHOD_CALL_KEY: self._actor._last_call}
        node = ClassMethodNode(self._method_name, args, kwargs, self._options, other)
        self._actor._last_call = node
        return node

    def options(self, **options: Any) -> _UnboundClassMethodNode:
        self._options = options  # as in Ray: these replace the options given before
        return self

    def __getattr__(self, name: str) -> Any:
        if name == "remote":
            raise AttributeError(
                ".remote() cannot be used on ClassMethodNodes. Use .bind() instead to express an symbolic actor call."
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class ClassMethodNode(DAGNode):
    """An actor method's call (on a ``ClassNode``'s actor or a live handle's), or one of the results
    of such a call with ``num_returns`` > 1 bound on a handle."""

    def __init__(
        self,
        method_name: str,
        method_args: tuple[Any, ...],
        method_kwargs: dict[str, Any],
        method_options: dict[str, Any],
        other_args_to_resolve: dict[str, Any],
    ) -> None:
        self._method_name = method_name
        self._parent_class_node = other_args_to_resolve.get(PARENT_CLASS_NODE_KEY)
        self._is_class_method_output = bool(other_args_to_resolve.get(IS_CLASS_METHOD_OUTPUT_KEY, False))
        super().__init__(method_args, method_kwargs, method_options, other_args_to_resolve)

    def _call(self, execution: _Execution, args: Any, kwargs: dict[str, Any], other: dict[str, Any]) -> Any:
        if self._is_class_method_output:
            return args[0][args[1]]
        method = getattr(other[PARENT_CLASS_NODE_KEY], self._method_name)
        if self._bound_options:
            method = method.options(**self._bound_options)
        return method.remote(*args, **kwargs)

    def get_method_name(self) -> str:
        return self._method_name

    @property
    def is_class_method_call(self) -> bool:
        return not self._is_class_method_output

    @property
    def is_class_method_output(self) -> bool:
        return self._is_class_method_output

    @property
    def class_method_call(self) -> ClassMethodNode | None:
        """For one result of a call: the call."""
        return self._bound_args[0] if self._is_class_method_output else None

    @property
    def output_idx(self) -> int | None:
        """For one result of a call: which one."""
        return self._bound_args[1] if self._is_class_method_output else None


def bind_method(method: ActorMethod, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``handle.method.bind(...)``: a call of a live actor's method (a tuple of result nodes with
    ``num_returns`` > 1, as in Ray)."""
    given = method._options
    options = {key: given[key] for key in ("name", "concurrency_group") if given.get(key) is not None}
    options["num_returns"] = gen.resolve_num_returns(given.get("num_returns"), bool(given.get("is_generator")))
    other = {PARENT_CLASS_NODE_KEY: method._handle, PREV_CLASS_METHOD_CALL_KEY: None}
    node = ClassMethodNode(method._name, args, kwargs, options, other)
    count = options["num_returns"]
    if not isinstance(count, int) or count <= 1:
        return node
    output = {IS_CLASS_METHOD_OUTPUT_KEY: True, PARENT_CLASS_NODE_KEY: method._handle}
    return tuple(ClassMethodNode(f"return_idx_{i}", (node, i), {}, {}, dict(output)) for i in range(count))


class InputNode(DAGNode):
    """The input of ``execute``: ``with InputNode() as inp:``, then ``inp``, ``inp[0]`` or ``inp.key``."""

    def __init__(
        self,
        *args: Any,
        input_type: Any = None,
        _other_args_to_resolve: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if args or kwargs:
            raise ValueError("InputNode should not take any args or kwargs.")
        self.input_attribute_nodes: dict[int | str, InputAttributeNode] = {}
        self.input_type = input_type
        super().__init__([], {}, {}, dict(_other_args_to_resolve or {}))

    def __enter__(self) -> InputNode:
        self._bound_other_args_to_resolve[IN_CONTEXT_MANAGER] = True
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def _call(self, execution: _Execution, args: Any, kwargs: dict[str, Any], other: dict[str, Any]) -> Any:
        if not self._bound_other_args_to_resolve.get(IN_CONTEXT_MANAGER):
            raise AssertionError(
                "InputNode is a singleton instance that should be only used in context manager for dag "
                "building and execution. See the docstring of class InputNode for examples."
            )
        if len(execution.args) == 1 and not execution.kwargs:
            return execution.args[0]
        return DAGInputData(*execution.args, **execution.kwargs)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__") or key in REFUSED or "input_attribute_nodes" not in self.__dict__:
            return super().__getattr__(key)
        return self._attribute(key, "__getattr__")

    def __getitem__(self, key: int | str) -> InputAttributeNode:
        if not isinstance(key, str | int):
            raise AssertionError("Please only use int index or str as first-level key to access fields of dag input.")
        return self._attribute(key, "__getitem__")

    def _attribute(self, key: int | str, accessor: str) -> InputAttributeNode:
        """The node of one part of the input: one per key, as in Ray (the first accessor used stays)."""
        if key not in self.input_attribute_nodes:
            self.input_attribute_nodes[key] = InputAttributeNode(self, key, accessor)
        return self.input_attribute_nodes[key]


class InputAttributeNode(DAGNode):
    """A part of the input: ``inp[0]`` (an argument of ``execute``, or an item of its one argument),
    ``inp.key`` or ``inp["key"]`` (a keyword argument, or an attribute or item of its one argument)."""

    def __init__(
        self, dag_input_node: InputNode, key: int | str, accessor_method: str, input_type: str | None = None
    ) -> None:
        self._dag_input_node = dag_input_node
        self._key = key
        self._accessor_method = accessor_method
        other = {"dag_input_node": dag_input_node, "key": key, "accessor_method": accessor_method}
        super().__init__([], {}, {}, {**other, "result_type_string": input_type})

    def _call(self, execution: _Execution, args: Any, kwargs: dict[str, Any], other: dict[str, Any]) -> Any:
        value = other["dag_input_node"]
        if isinstance(value, DAGInputData):
            return value[self._key]
        if isinstance(self._key, str) and self._accessor_method == "__getattr__":
            return getattr(value, self._key)
        return value[self._key]

    @property
    def key(self) -> int | str:
        return self._key


class DAGInputData:
    """The input of an ``execute`` given several arguments: ``[i]`` is a positional one, ``["k"]`` a keyword one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = list(args)
        self._kwargs = kwargs

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, int):
            return self._args[key]
        if isinstance(key, str):
            return self._kwargs[key]
        raise ValueError("Please only use int index or str as first-level key to access fields of dag input.")


class MultiOutputNode(DAGNode):
    """Several outputs: ``execute`` gives the list of their results."""

    def __init__(self, args: list[Any] | tuple[Any, ...], other_args_to_resolve: dict[str, Any] | None = None) -> None:
        if isinstance(args, tuple):
            args = list(args)
        if not isinstance(args, list):
            raise ValueError(f"Invalid input type for `args`, {type(args)}.")
        super().__init__(args, {}, {}, dict(other_args_to_resolve or {}))

    def _call(self, execution: _Execution, args: Any, kwargs: dict[str, Any], other: dict[str, Any]) -> Any:
        return args


__getattr__ = module_getattr("ray.dag")
globals().update(stand_ins("ray.dag", DAG_CALLABLES))  # compiled graphs' classes, plot: refuse when called


def _shutdown_all_compiled_dags() -> None:
    """What a patched Ray's own ``shutdown`` calls at exit: there are no compiled graphs to end."""


__all__ = [
    "BIND_INDEX_KEY",
    "COLLECTIVE_OPERATION_KEY",
    "DAGNODE_TYPE_KEY",
    "IS_CLASS_METHOD_OUTPUT_KEY",
    "PARENT_CLASS_NODE_KEY",
    "PREV_CLASS_METHOD_CALL_KEY",
    "ClassMethodNode",
    "ClassNode",
    "DAGInputData",
    "DAGNode",
    "FunctionNode",
    "InputAttributeNode",
    "InputNode",
    "MultiOutputNode",
]
