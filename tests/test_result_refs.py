"""Refs inside results and put values stay alive while the object that holds them does (issue 9).

A task that submits a subtask (or puts a value) through its own ``Client()`` and returns the ref
hands the caller an object it does not own: the in-task client drops its future as soon as the
task's locals go. The scheduler records that the task's result holds the ref, so the caller can
fetch it for as long as it keeps the result, and frees it when the result goes.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from scaler import Client, LocalCluster
from scaler.client.future import Future, ObjectRef
from scaler.protocol import messages as m
from scaler.scheduler.config import SchedulerConfig
from scaler.scheduler.engine import Engine
from scaler.scheduler.outbox import Outbox
from scaler.scheduler.workers import WorkerState
from scaler.utility.capabilities import parse_capabilities
from tests.conftest import wait_until

ROUNDS = 30
_in_task: Client | None = None


def _client() -> Client:
    """One in-task client per task process: closing it would end the subtasks it submitted."""
    global _in_task
    if _in_task is None:
        _in_task = Client()
    return _in_task


def times_ten(x: int, delay: float = 0.0) -> int:
    time.sleep(delay)
    return x * 10


def returns_future(x: int, delay: float) -> Future:
    future: Future = _client().submit(times_ten, x, delay)
    gc.collect()
    return future


def returns_put(x: int) -> ObjectRef:
    return _client().put(x + 1)


def returns_nested(x: int) -> dict[str, Any]:
    client = _client()
    return {"refs": [client.submit(times_ten, x), client.put(x - 1)], "plain": x}


def _objects(client: Client) -> int:
    return int(client.scheduler_status().status["objects"])


def _released_all(client: Client, baseline: int) -> bool:
    status = client.scheduler_status().status
    return int(status["objects"]) <= baseline and status["held_refs"] == 0


def _value(client: Client, ref: Any) -> Any:
    gc.collect()
    return client.get(ref, timeout=30)


def test_refs_returned_by_a_task_stay_alive_while_the_caller_holds_the_result(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=2)
    with Client(cluster.address) as client:
        warm = [client.submit(returns_future, 0, 0.0), client.submit(returns_put, 0), client.submit(returns_nested, 0)]
        assert [type(f.result(60)).__name__ for f in warm] == ["ObjectRef", "ObjectRef", "dict"]
        del warm
        gc.collect()
        client.sync()
        time.sleep(0.3)
        baseline = _objects(client)

        # A subtask finished before the task returns, one still running, a put, refs in a dict/list.
        outer = [client.submit(returns_future, i, 0.0) for i in range(ROUNDS)]
        outer += [client.submit(returns_future, i, 0.2) for i in range(ROUNDS // 3)]
        puts = [client.submit(returns_put, i) for i in range(ROUNDS)]
        nested = [client.submit(returns_nested, i) for i in range(ROUNDS // 3)]
        time.sleep(0.5)  # every in-task client has dropped its refs by now
        gc.collect()
        for i, future in enumerate(outer):
            assert _value(client, future.result(60)) == (i % ROUNDS) * 10
        # The caller keeps only the refs that came inside the results: they keep their objects.
        put_refs = [future.result(60) for future in puts]
        del puts
        gc.collect()
        client.sync()
        time.sleep(0.2)
        for i, ref in enumerate(put_refs):
            assert _value(client, ref) == i + 1
        for i, future in enumerate(nested):
            shape = future.result(60)
            assert shape["plain"] == i and _value(client, shape["refs"]) == [i * 10, i - 1]
        assert _objects(client) > baseline + 3 * ROUNDS

        del outer, put_refs, nested, future, shape, ref
        gc.collect()
        client.sync()
        wait_until(lambda: _released_all(client, baseline), 10)


def passes_back(refs: list[ObjectRef]) -> ObjectRef:
    return refs[0]


def test_refs_inside_a_put_value_stay_alive_while_the_put_object_does(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(n_workers=1)
    with Client(cluster.address) as client:
        client.submit(times_ten, 0).result(60)
        client.submit(passes_back, [0]).result(60)  # functions stay stored while their client lives
        gc.collect()
        client.sync()
        baseline = _objects(client)

        holders = []
        for i in range(ROUNDS):
            inner = [client.submit(times_ten, i, 0.01), client.put(i)]
            holders.append(client.put({"inner": inner}))
            del inner  # the only holder of the two objects is now the put value
        gc.collect()
        time.sleep(0.5)
        for i, holder in enumerate(holders):
            assert _value(client, client.get(holder)["inner"]) == [i * 10, i]
        assert _objects(client) >= baseline + 3 * ROUNDS

        # A ref the task got nested in its arguments, returned after the caller dropped its own.
        passed = client.put("kept")
        back = client.options(resolve_nested=False).submit(passes_back, [passed])
        del passed
        gc.collect()
        assert _value(client, back.result(60)) == "kept"

        del holders, holder, back
        gc.collect()
        client.sync()
        wait_until(lambda: _released_all(client, baseline), 10)


# -- the scheduler's side, without sockets -------------------------------------------------------


def _engine() -> Engine:
    engine = Engine(SchedulerConfig(), Outbox(None))  # type: ignore[arg-type]  # never flushed here
    engine.add_client(b"c", "c")
    engine.add_client(b"other", "other")
    return engine


def _put(engine: Engine, client: bytes, object_id: str, holds: list[str] | None = None, lent_to: str = "") -> None:
    engine.put(client, m.PutObject(object_id, 1, holds or [], lent_to), [object_id.encode()])


def _run_task(engine: Engine, task_id: str, borrowed: list[str]) -> None:
    engine.add_worker(WorkerState(b"w", "w", parse_capabilities("cpu=1"), {"cpu": 1.0}, {}))
    _put(engine, b"c", "f")
    engine.submit(b"c", m.SubmitTask(task_id, "f", "cpu=1", [], 0, borrowed=borrowed), [])
    engine.schedule()
    engine.started(b"w", [task_id])


def test_a_put_holds_only_refs_its_client_may_see() -> None:
    engine = _engine()
    _put(engine, b"c", "mine")
    _put(engine, b"other", "theirs")
    _put(engine, b"other", "holder", ["mine", "theirs", "never-existed"])
    assert engine.store.objects["holder"].holds == ("theirs",), "no client pins another's object"
    engine.release(b"other", ["theirs"])
    assert "theirs" in engine.store, "held by the put value"
    _put(engine, b"c", "outer", ["holder", "mine"])  # another client's holder: not visible either
    assert engine.store.objects["outer"].holds == ("mine",)
    engine.release(b"other", ["holder"])
    assert "theirs" not in engine.store and "holder" not in engine.store
    engine.release(b"c", ["mine", "outer"])
    assert not engine.store.objects.keys() - {"f"} and not engine.store.holders


def test_a_result_holds_what_its_task_was_handed_and_what_its_own_clients_lent_it() -> None:
    engine = _engine()
    _put(engine, b"c", "arg")
    _put(engine, b"other", "secret")
    _run_task(engine, "t1", borrowed=["arg"])
    _put(engine, b"other", "sub")  # the task's in-task client puts a value, lends it, drops it
    _put(engine, b"other", "lend", ["sub"], lent_to="t1")
    engine.release(b"other", ["lend", "sub"])
    engine.release(b"c", ["arg"])
    assert {"arg", "sub", "lend"} <= engine.store.objects.keys(), "pinned by the running task"
    holds = ["arg", "sub", "secret", "f#1"]
    engine.task_done(b"w", m.TaskDone("t1", "done", [m.ObjHeader("t1", 1, holds=holds)]), [b"r"])
    assert engine.store.objects["t1"].holds == ("arg", "sub")
    assert "lend" not in engine.store and {"arg", "sub"} <= engine.store.objects.keys()
    engine.release(b"c", ["t1"])
    assert engine.store.objects.keys() == {"f", "secret"} and not engine.store.holders


def test_a_hold_on_a_result_not_computed_yet_keeps_it_when_it_arrives() -> None:
    engine = _engine()
    _run_task(engine, "t1", borrowed=[])
    _put(engine, b"c", "holder", ["t1", "t1#0", "t2"])  # only t1 is a result still to come
    assert engine.store.objects["holder"].holds == ("t1",)
    engine.release(b"c", ["t1"])  # the caller drops its future: the result is still wanted
    engine.task_done(b"w", m.TaskDone("t1", "done", [m.ObjHeader("t1", 1)]), [b"r"])
    assert "t1" in engine.store
    engine.release(b"c", ["holder"])
    assert engine.store.objects.keys() == {"f"} and not engine.store.holders


def test_holds_never_make_a_cycle() -> None:
    engine = _engine()
    _put(engine, b"c", "x")
    _put(engine, b"c", "y", ["x"])
    _put(engine, b"c", "x", ["y"])  # the same id put again: y holds it, so it cannot hold y
    assert engine.store.objects["x"].holds == ()
    _run_task(engine, "t1", borrowed=[])
    _put(engine, b"c", "z", ["t1"], lent_to="t1")  # holds the result to come, and is lent to its task
    engine.task_done(b"w", m.TaskDone("t1", "done", [m.ObjHeader("t1", 1, holds=["z"])]), [b"r"])
    assert engine.store.objects["t1"].holds == ()
    engine.release(b"c", ["x", "y", "z", "t1"])
    assert engine.store.objects.keys() == {"f"} and not engine.store.holders


def test_a_long_chain_of_holds_is_freed_without_recursion() -> None:
    engine = _engine()
    _put(engine, b"c", "link0")
    for i in range(1, 20_000):
        _put(engine, b"c", f"link{i}", [f"link{i - 1}"])
    engine.release(b"c", [f"link{i}" for i in range(20_000 - 1)])
    assert len(engine.store.objects) == 20_000
    engine.release(b"c", ["link19999"])
    assert not engine.store.objects and not engine.store.holders


def _put_inside() -> list[Any]:
    from scaler import Client as InTask

    return [InTask().put(list(range(10)))]


def test_a_worker_stopped_normally_leaves_the_refs_its_tasks_returned() -> None:
    with LocalCluster(n_workers=1) as cluster, Client(cluster.address) as client:
        [ref] = client.submit(_put_inside).result(30)
        assert client.get(ref, timeout=10) == list(range(10))
        cluster.add_worker()
        first = cluster.workers[0]
        first.terminate()  # a normal stop (scale-down, drain): nothing died
        assert first.wait(15) == 0
        time.sleep(1.0)
        assert client.get(ref, timeout=10) == list(range(10)), "a normal stop is not an owner's death"
