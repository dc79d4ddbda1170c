"""``@ray.remote`` on classes: actors hosted by a task that serves their method calls.

``Cls.remote(*args)`` submits one long-running *host task* (with the actor's resources, default
0 CPU as in Ray) that builds the instance and turns its process into a dedicated worker with the
capability ``actor.<id>=N``. Method calls are tasks asking for one unit of it, so at most N run at
once, on that process only: N is 1 for a plain actor (calls run one at a time, in submission order
per caller), ``max_concurrency`` for async and threaded ones (``actor_concurrency.py``).
``max_restarts`` is the host task's retries; ``max_task_retries`` the retries of a call whose host
died. ``ray.kill`` cancels the host task; pending calls then fail with ``ActorDiedError``. Named
actors live in the scheduler's small key-value table, per namespace: ``options(namespace=)``, else
the creating job's (``namespaces.py``). The host sets the actor's ``runtime_env`` variables (and ``ray.init``'s) in its
process for the actor's whole life, and makes its creating job's namespace the current one there.
``exit_actor`` inside a method kills the host as ``ray.kill`` would, so that call and the queued
ones see ``ActorDiedError``.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any

from scaler.client.client import TaskOptions
from scaler.compat.ray import actor_concurrency as conc
from scaler.compat.ray import dag, namespaces
from scaler.compat.ray import exceptions as rx
from scaler.compat.ray import generators as gen
from scaler.compat.ray import options as opt
from scaler.compat.ray import placement_groups as pgs
from scaler.compat.ray.remote_function import mark_top_level, task_options, wrap_refs
from scaler.compat.ray.session import client, current_namespace, session
from scaler.worker import dedicated, runtime, streaming
from scaler.worker.actor_calls import Concurrency

_METHOD_NUM_RETURNS = "__ray_num_returns__"
_host_task: str | None = None  # in an actor's process: the id of the task hosting it


def method(*, num_returns: Any = None, concurrency_group: str | None = None, **kwargs: Any) -> Any:
    """``@ray.method(num_returns=N, concurrency_group=...)`` for actor methods."""
    if kwargs:
        raise NotImplementedError(f"@ray.method({', '.join(kwargs)}=...) is not supported by Scaler")

    def mark(function: Any) -> Any:
        setattr(function, _METHOD_NUM_RETURNS, num_returns)
        if concurrency_group is not None:
            setattr(function, conc.GROUP_ATTRIBUTE, concurrency_group)
        return function

    return mark


def _host(
    cls: type,
    actor_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    env_vars: dict[str, str],
    namespace: str,
    concurrency: Concurrency | None = None,
    placement: tuple[pgs.PlacementGroup, bool] | None = None,
) -> None:
    """Build the actor and serve its calls; they all run in ``namespace``, its creating job's, and in
    its placement group if it has one."""
    global _host_task
    _host_task = runtime.current_task_id() or None
    try:
        with namespaces.applied(namespace), opt.env_applied(env_vars), pgs.running_in(placement):
            dedicated.serve(actor_id, functools.partial(cls, *args, **kwargs), concurrency)
    finally:
        _host_task = None


def _call(name: str, *args: Any, **kwargs: Any) -> Any:
    state = dedicated.current_state()
    if state is None:
        raise RuntimeError(f"actor method {name} ran outside its actor host")
    return getattr(state, name)(*args, **kwargs)


def _call_generator(name: str, mode: str, *args: Any, **kwargs: Any) -> Any:
    produced = _call(name, *args, **kwargs)
    if inspect.isasyncgen(produced) and mode == "streaming":  # streams from the actor's event loop
        return streaming.stream_async(produced)
    if inspect.isasyncgen(produced):  # an async actor's: run on its loop, then handed out as values
        return _expand_async(produced, mode, name)
    return gen.expand(produced, mode, name)


async def _expand_async(produced: Any, mode: str, name: str) -> Any:
    return gen.expand(await conc.drain(produced), mode, name)


def exit_actor() -> None:
    """``ray.actor.exit_actor()``: end the current actor from inside one of its methods."""
    if _host_task is None or dedicated.current_state() is None:
        raise TypeError("exit_actor API is called on a non-actor worker.")
    client()._cancel_ids([_host_task], True)
    error = rx.ActorDiedError("The actor exited intentionally: exit_actor() was called.")
    error.__scaler_fatal__ = True  # type: ignore[attr-defined]
    raise error


class ActorMethod:
    def __init__(self, handle: ActorHandle, name: str, options: dict[str, Any]) -> None:
        self._handle = handle
        self._name = name
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        handle = self._handle
        label = f"{handle._class_name}.{self._name}"
        is_generator = bool(self._options.get("is_generator"))
        num_returns = gen.resolve_num_returns(self._options.get("num_returns"), is_generator)
        call_opts = {"num_returns": num_returns, "max_retries": handle._max_task_retries}
        base = task_options(call_opts, label)
        group = self._options.get("concurrency_group")
        task_opts = TaskOptions(
            capabilities=conc.call_request(handle._actor_id, handle._groups, group, label),
            max_retries=base.max_retries,
            num_returns=base.num_returns,
            resolve_nested=False,
            name=label,
            stream_output=base.stream_output,
        )
        marked_args, marked_kwargs = mark_top_level(args, kwargs)
        mode = gen.mode_of(num_returns, is_generator)
        if mode or is_generator:  # an async generator method with num_returns=N is drained first too
            call_args: tuple[Any, ...] = (self._name, mode, *marked_args)
            futures = client().submit_with(task_opts, _call_generator, call_args, marked_kwargs)
        else:
            futures = client().submit_with(task_opts, _call, (self._name, *marked_args), marked_kwargs)
        for future in futures:
            future._ray_actor_call = True  # type: ignore[attr-defined]  # ray.cancel(force=True) refuses it
        return wrap_refs(futures, num_returns, label)

    def options(self, **options: Any) -> ActorMethod:
        unknown = set(options) - {"num_returns", "name", "concurrency_group"}
        if unknown:
            raise NotImplementedError(f"actor method option(s) {', '.join(sorted(unknown))} are not supported")
        return ActorMethod(self._handle, self._name, {**self._options, **options})

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        """``handle.method.bind(...)``: this call as a node of a Ray DAG (``dag.py``)."""
        return dag.bind_method(self, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of '{self._name}()', try '{self._name}.remote()'."
        )


class ActorHandle:
    def __init__(
        self, actor_id: str, class_name: str, methods: dict[str, Any], max_task_retries: int, host_task: str
    ) -> None:
        self._actor_id = actor_id
        self._class_name = class_name
        self._methods = methods
        self._max_task_retries = max_task_retries
        self._host_task = host_task
        self._name_key = ""
        self._groups: dict[str, int] = {}  # its concurrency groups' indexes (none: it has no groups)

    def __getattr__(self, name: str) -> ActorMethod:
        methods = self.__dict__.get("_methods", {})
        if name not in methods:
            raise AttributeError(f"'{self.__dict__.get('_class_name')}' actor has no method '{name}'")
        num_returns, is_generator, group = methods[name]
        options = {"num_returns": num_returns, "is_generator": is_generator, "concurrency_group": group}
        return ActorMethod(self, name, options)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        args = (self._actor_id, self._class_name, self._methods, self._max_task_retries, self._host_task)
        return ActorHandle, args, {"_name_key": self._name_key, "_groups": self._groups}

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)


class ActorClass:
    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = opt.check(dict(options), opt.ACTOR_OPTIONS, f"@ray.remote({cls.__qualname__})")
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__doc__ = cls.__doc__
        self.__module__ = cls.__module__

    def options(self, **options: Any) -> ActorClass:
        return ActorClass(self._cls, {**self._options, **options})

    def bind(self, *args: Any, **kwargs: Any) -> dag.ClassNode:
        """``Cls.bind(...)``: this actor's creation as a node of a Ray DAG (``dag.py``)."""
        return dag.ClassNode(self, args, kwargs)

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        options = self._options
        name = options.get("name")
        key = _name_key(name, _namespace(options)) if name else ""
        if key and options.get("get_if_exists"):
            existing = client().kv_get(key)
            if existing is not None:
                return existing  # type: ignore[no-any-return]
        actor_id = os.urandom(8).hex()
        members = [(a, v) for a, v in _members(self._cls) if callable(v) and not a.startswith("__")]
        is_async = conc.is_async_class(self._cls)
        concurrency, groups = conc.concurrency_of(options, is_async, f"{self.__name__}.remote()")
        methods = {
            attr: (
                getattr(value, _METHOD_NUM_RETURNS, None),
                inspect.isgeneratorfunction(value) or inspect.isasyncgenfunction(value),
                conc.method_group(value),
            )
            for attr, value in members
        }
        placing = ("num_cpus", "num_gpus", "memory", "resources", "scheduling_strategy", *opt.PLACEMENT_OPTIONS)
        host_opts: dict[str, Any] = {k: options[k] for k in placing if k in options}
        host_opts["max_retries"] = options.get("max_restarts", 0)
        placement = pgs.placement_of(host_opts, opt.capability_string(host_opts, 0), self.__name__)
        base = task_options(host_opts, f"{self.__name__}.__init__", 0, placement, actor=True)
        task_opts = TaskOptions(
            capabilities=base.capabilities,
            node=base.node,
            placement=base.placement,
            bundle=base.bundle,
            max_retries=base.max_retries,
            resolve_nested=False,
            name=base.name,
            stream_output=base.stream_output,
            actor_id=actor_id,
            detached=options.get("lifetime") == "detached",
        )
        env_vars = {**session().env_vars, **opt.runtime_env_vars(options.get("runtime_env"), self.__name__)}
        marked_args, marked_kwargs = mark_top_level(args, kwargs)
        inside = (placement[0], placement[2]) if placement else None
        namespace = current_namespace()
        host_args = (self._cls, actor_id, marked_args, marked_kwargs, env_vars, namespace, concurrency, inside)
        host = client().submit_with(task_opts, _host, host_args, {})[0]
        retries = options.get("max_task_retries", 0)
        handle = ActorHandle(actor_id, self.__name__, methods, 1 << 30 if retries == -1 else retries, host.task_id)
        handle._host_future = host  # type: ignore[attr-defined]
        handle._name_key = key
        handle._groups = groups
        if key:
            stored = client().kv_put(key, handle, if_absent=True, actor_id=actor_id)
            if stored != handle:
                client()._cancel_ids([host.task_id], True)
                if options.get("get_if_exists"):
                    return stored  # type: ignore[no-any-return]
                raise rx.ActorAlreadyExistsError(
                    f"The name {name} (namespace={_namespace(options)}) is already taken. Please use a different "
                    f"name or get the existing actor using ray.get_actor('{name}', namespace='{_namespace(options)}')"
                )
        return handle

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self.__name__}()', use '{self.__name__}.remote()'."
        )


def _members(cls: type) -> list[tuple[str, Any]]:
    seen: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            seen[attr] = value
    return list(seen.items())


def _namespace(options: dict[str, Any]) -> str:
    """The namespace a named actor is registered in: its own option, else the job's."""
    given = options.get("namespace")
    return current_namespace() if given is None else namespaces.checked(given, "actor options")


def _name_key(name: str, namespace: str | None) -> str:
    return namespaces.actor_key(current_namespace() if namespace is None else namespace, name)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"ray.kill() only supported for actors. Got: {type(actor)}.")
    if not no_restart:
        raise NotImplementedError("ray.kill(no_restart=False) is not supported by Scaler")
    client()._cancel_ids([actor._host_task], True)
    if actor._name_key:
        client().kv_delete(actor._name_key)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The named actor in ``namespace``, or in the current job's (a task's: its job's)."""
    if namespace is not None:
        namespaces.checked(namespace, "ray.get_actor")
    handle = client().kv_get(_name_key(name, namespace))
    if handle is None:
        raise ValueError(
            f"Failed to look up actor with name '{name}'. This could because 1. You are trying to look "
            "up a named actor you didn't create. 2. The named actor died. 3. You did not use a namespace "
            "matching the namespace of the actor."
        )
    return handle  # type: ignore[no-any-return]
