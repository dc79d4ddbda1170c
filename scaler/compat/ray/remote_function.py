"""``@ray.remote`` on functions: ``.remote``, ``.options`` (merged with the decorator's), retries.

A function is shipped once per client and namespace, inside a small picklable wrapper made once
per option set, session and namespace, that does the rest in the task process: it makes the job's
namespace the current one there (the process runs tasks of many jobs, ``namespaces.py``), sets
``runtime_env`` variables, filters errors by ``retry_exceptions`` types and expands generators. A
``num_returns=N`` generator is iterated by the worker (``scaler/worker/results.py``); the wrapper
hands it over guarded, so that the namespace, the env vars and the retry filter also apply while
it yields.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from scaler.client.client import TaskOptions
from scaler.compat.ray import dag, namespaces
from scaler.compat.ray import generators as gen
from scaler.compat.ray import options as opt
from scaler.compat.ray import placement_groups as pgs
from scaler.compat.ray.refs import ObjectRef
from scaler.compat.ray.scheduling_strategies import node_of
from scaler.compat.ray.session import Session, client, current_namespace, session
from scaler.utility.serialization import Resolve
from scaler.worker.results import Partial

Placement = tuple[pgs.PlacementGroup, int, bool]  # a group, the bundle index, capture_child_tasks


class TaskWrapper:
    """Runs the user's function in its job's namespace, with env vars set, retry filter applied,
    generators expanded."""

    def __init__(
        self,
        function: Callable[..., Any],
        namespace: str,
        env_vars: dict[str, str],
        retry_types: tuple[type, ...] | None,
        mode: str,
        placement: tuple[pgs.PlacementGroup, bool] | None = None,
    ) -> None:
        self.function = function
        self.placement = placement
        self.namespace = namespace
        self.env_vars = env_vars
        self.retry_types = retry_types
        self.mode = mode
        self.__name__ = getattr(function, "__name__", "task")
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            with namespaces.applied(self.namespace), opt.env_applied(self.env_vars), pgs.running_in(self.placement):
                result = gen.expand(self.function(*args, **kwargs), self.mode, self.__name__)
        except BaseException as exc:
            self._filter(exc)
            raise
        if isinstance(result, Partial) and result.error is not None:
            self._filter(result.error)
        elif inspect.isgenerator(result):  # num_returns=N: the worker iterates it (scaler/worker/results.py)
            return self._guarded(result)
        return result

    def _filter(self, exc: BaseException) -> None:
        """An error not among ``retry_exceptions``' types is never retried."""
        if self.retry_types is not None and not isinstance(exc, self.retry_types):
            exc.__scaler_fatal__ = True  # type: ignore[attr-defined]

    def _guarded(self, generator: Iterator[Any]) -> Iterator[Any]:
        """``generator``'s values, each produced in the namespace with the env vars set and its error
        filtered."""
        while True:
            try:
                with namespaces.applied(self.namespace), opt.env_applied(self.env_vars), pgs.running_in(self.placement):
                    value = next(generator)
            except StopIteration:
                return
            except BaseException as exc:
                self._filter(exc)
                raise
            yield value


def mark_top_level(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Top-level ref arguments are passed as values (Ray semantics); nested ones stay refs.

    The caller must keep the original arguments alive until the task is submitted: a ref dropped
    earlier could have its release reach the scheduler before the task that needs it.
    """
    new_args = tuple(Resolve(a.object_id) if isinstance(a, ObjectRef) else a for a in args)
    new_kwargs = {k: Resolve(v.object_id) if isinstance(v, ObjectRef) else v for k, v in kwargs.items()}
    return new_args, new_kwargs


def wrap_refs(futures: list[Any], num_returns: Any, name: str) -> Any:
    refs = [ObjectRef(f, name) for f in futures]
    if num_returns == "streaming":
        return gen.ObjectRefGenerator(refs[0])
    if num_returns == "dynamic":
        return refs[0]
    if num_returns == 1:
        return refs[0]
    if num_returns == 0:
        return None
    return refs


def task_options(
    options: dict[str, Any],
    name: str,
    default_cpus: float = 1,
    placement: Placement | None = None,
    actor: bool = False,
) -> TaskOptions:
    """The Scaler task options for Ray ``options``; ``placement`` from ``placement_of``."""
    num_returns = options.get("num_returns", 1)
    if num_returns in gen.STREAM_MODES:
        count = 1
    elif isinstance(num_returns, int) and num_returns >= 0:
        count = num_returns
    else:
        raise ValueError(f"num_returns must be a non-negative int, 'dynamic' or 'streaming', not {num_returns!r}")
    retry = options.get("retry_exceptions", False)
    max_retries = options.get("max_retries", 3)
    if max_retries == -1:
        max_retries = 1 << 30
    capabilities = opt.capability_string(options, default_cpus=default_cpus)
    return TaskOptions(
        capabilities=capabilities,
        node=node_of(options, capabilities, name, actor),
        placement=placement[0].id.hex() if placement else "",
        bundle=placement[1] if placement else -1,
        max_retries=int(max_retries),
        retry_exceptions=bool(retry),
        num_returns=count,
        resolve_nested=False,
        name=options.get("name") or name,
        stream_output=session().log_to_driver,
    )


class RemoteFunction:
    def __init__(self, function: Callable[..., Any], options: dict[str, Any]) -> None:
        self._function = function
        self._options = opt.check(dict(options), opt.TASK_OPTIONS, f"@ray.remote({function.__qualname__})")
        self._shipped: tuple[Session, dict[tuple[str, str, bool], TaskWrapper]] | None = None
        self.__name__ = function.__name__
        self.__qualname__ = function.__qualname__
        self.__doc__ = function.__doc__
        self.__module__ = function.__module__

    def _num_returns(self) -> Any:
        return gen.resolve_num_returns(self._options.get("num_returns"), inspect.isgeneratorfunction(self._function))

    def _to_ship(self, placement: Placement | None) -> TaskWrapper:
        """The wrapper for this session, namespace and placement group, kept so that each is shipped
        once: in a task process, tasks of several jobs submit through one session, each in its job's
        namespace."""
        current, namespace = session(), current_namespace()
        if self._shipped is None or self._shipped[0] is not current:
            self._shipped = (current, {})
        wrappers = self._shipped[1]
        key = (namespace, placement[0].id.hex(), placement[2]) if placement else (namespace, "", False)
        if key not in wrappers:
            env_vars = {**current.env_vars, **opt.runtime_env_vars(self._options.get("runtime_env"), self.__name__)}
            retry = self._options.get("retry_exceptions", False)
            retry_types = tuple(retry) if isinstance(retry, list | tuple) else None
            mode = gen.mode_of(self._num_returns(), inspect.isgeneratorfunction(self._function))
            inside = (placement[0], placement[2]) if placement else None
            wrappers[key] = TaskWrapper(self._function, namespace, env_vars, retry_types, mode, inside)
        return wrappers[key]

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        num_returns = self._num_returns()
        options = {**self._options, "num_returns": num_returns}
        placement = pgs.placement_of(options, opt.capability_string(options, 1), self.__qualname__)
        task_opts = task_options(options, self.__qualname__, placement=placement)
        marked_args, marked_kwargs = mark_top_level(args, kwargs)
        futures = client().submit_with(task_opts, self._to_ship(placement), marked_args, marked_kwargs)
        return wrap_refs(futures, num_returns, self.__qualname__)

    def options(self, **options: Any) -> RemoteFunction:
        return RemoteFunction(self._function, {**self._options, **options})

    def bind(self, *args: Any, **kwargs: Any) -> dag.FunctionNode:
        """``f.bind(...)``: this call as a node of a Ray DAG (``dag.py``), made by ``execute``."""
        return dag.FunctionNode(self, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running '{self.__name__}()', "
            f"try '{self.__name__}.remote()'."
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"_function": self._function, "_options": self._options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["_function"], state["_options"])  # type: ignore[misc]
