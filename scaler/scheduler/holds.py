"""Refs inside stored objects: which ones a peer may make its object hold (DESIGN §1, §2).

A task's result or a put value may contain refs; the object then *holds* them, and the store keeps
their objects while it is kept (``ObjectStore.hold``): whoever holds the result can fetch them after
their creator dropped its own refs, as Ray's borrowing allows. Holds are validated where they
enter, so that no peer pins an object it could not itself see; other ids are left out of the hold:

- a client's put may hold what the client owns (its puts, the results of its tasks, also of those
  still running) and what those hold in turn;
- a task's result may hold what the task was handed (the argument refs pinned or borrowed for it
  while it runs) and what those hold in turn.

Two kinds of put make refs outlive the object they travel in. A client that loads a value with refs
inside puts those refs as one object of its own, released when the last of them goes
(``Client._hold_loaded``): the caller may drop a task's result and keep the refs it returned. And a
task that submits a subtask or puts a value through its own ``Client()`` and returns the ref hands
over an object its in-task client drops when the task's locals go, possibly before the result
reaches the scheduler (it travels through the worker's agent, on another connection). So before the
result leaves, each of the task's clients puts the result's refs *lent to the task*
(``PutObject.lent_to``, see ``runtime.settle``): the task borrows that put until it ends, and its
result sees the refs through it.

Left for issue 10: a ref a task did not get from its arguments or its own clients' work of this task
(a global kept from an earlier task, a ref kept in an actor's state from an earlier call) is not held
by the result; a put inside a task holds only refs its client may see, not the task's arguments.
"""

from __future__ import annotations

from collections.abc import Callable

from scaler.scheduler.objects import ObjectStore, StoredObject
from scaler.scheduler.tasks import TERMINAL, Task, producer_of

MAX_HOLDS = 100_000  # refs one object may hold (as many as a task's arguments may carry)
MAX_SEARCH = 10_000  # objects looked at to find whether a held id is visible


def is_result_of(task: Task, object_id: str) -> bool:
    """Whether ``object_id`` is one of the results ``task`` will store."""
    if task.num_returns == 1:
        return object_id == task.task_id
    index = object_id[len(task.task_id) + 1 :]
    return object_id.startswith(f"{task.task_id}#") and index.isdigit() and int(index) < task.num_returns


class Holds:
    def __init__(self, store: ObjectStore, tasks: dict[str, Task], borrowers: dict[str, list[Task]]) -> None:
        self.store = store
        self.tasks = tasks
        self.borrowers = borrowers

    def by_client(self, holder: StoredObject, object_ids: list[str], client: bytes) -> None:
        """``holder``, put by ``client``, holds the refs among ``object_ids`` the client may see."""

        def owned(object_id: str) -> bool:
            obj = self.store.get(object_id)
            if obj is not None:
                return obj.owner == client
            task = self.tasks.get(producer_of(object_id))
            return (
                task is not None
                and task.client == client
                and task.state not in TERMINAL
                and is_result_of(task, object_id)
            )

        self._hold(holder, object_ids, owned)

    def by_task(self, holder: StoredObject, object_ids: list[str], task: Task) -> None:
        """``holder``, a result of ``task``, holds the refs among ``object_ids`` the task was handed."""
        pinned = set(task.pinned)

        def handed(object_id: str) -> bool:
            return object_id in pinned or task in self.borrowers.get(object_id, ())

        self._hold(holder, object_ids, handed)

    def _hold(self, holder: StoredObject, object_ids: list[str], root: Callable[[str], bool]) -> None:
        if not object_ids:
            return
        # What already holds the holder (it was held before it arrived, or its id is put again) is
        # never held back by it: a cycle would keep both forever.
        above = self._above(holder.object_id) if holder.object_id in self.store.holders else set()
        if above is None:
            return
        visible = [
            object_id
            for object_id in object_ids[:MAX_HOLDS]
            if object_id not in above and self._reaches(object_id, root)
        ]
        self.store.hold(holder, visible)

    def _reaches(self, object_id: str, root: Callable[[str], bool]) -> bool:
        """Whether ``object_id`` is a root, or is held by a root, directly or not."""
        seen = {object_id}
        stack = [object_id]
        while stack:
            current = stack.pop()
            if root(current):
                return True
            for holder in self.store.holders.get(current, ()):
                if holder not in seen and len(seen) < MAX_SEARCH:
                    seen.add(holder)
                    stack.append(holder)
        return False

    def _above(self, object_id: str) -> set[str] | None:
        """The objects holding ``object_id``, directly or not (``None``: too many to tell)."""
        seen = {object_id}
        stack = [object_id]
        while stack:
            for holder in self.store.holders.get(stack.pop(), ()):
                if holder not in seen:
                    if len(seen) >= MAX_SEARCH:
                        return None
                    seen.add(holder)
                    stack.append(holder)
        seen.discard(object_id)
        return seen
