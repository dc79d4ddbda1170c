"""Queues per capability set, each fair across clients (round-robin), so no head blocks another."""

from __future__ import annotations

from collections import OrderedDict, deque

from scaler.scheduler.tasks import Task


class FairQueue:
    """Tasks of one capability set; ``pop`` takes from clients in turn."""

    __slots__ = ("by_client", "size")

    def __init__(self) -> None:
        self.by_client: OrderedDict[bytes, deque[Task]] = OrderedDict()
        self.size = 0

    def push(self, task: Task, front: bool = False) -> None:
        dq = self.by_client.get(task.client)
        if dq is None:
            dq = self.by_client[task.client] = deque()
        if front:
            dq.appendleft(task)
        else:
            dq.append(task)
        self.size += 1

    def pop(self) -> Task | None:
        while self.by_client:
            client, dq = next(iter(self.by_client.items()))
            if not dq:
                del self.by_client[client]
                continue
            task = dq.popleft()
            self.size -= 1
            if dq:
                self.by_client.move_to_end(client)
            else:
                del self.by_client[client]
            return task
        return None

    def peek(self) -> Task | None:
        for dq in self.by_client.values():
            if dq:
                return dq[0]
        return None

    def push_front(self, task: Task) -> None:
        self.push(task, front=True)
        self.by_client.move_to_end(task.client, last=False)

    def remove(self, task: Task) -> bool:
        dq = self.by_client.get(task.client)
        if dq is None:
            return False
        try:
            dq.remove(task)
        except ValueError:
            return False
        self.size -= 1
        if not dq:
            del self.by_client[task.client]
        return True

    def remove_client(self, client: bytes) -> list[Task]:
        dq = self.by_client.pop(client, None)
        if not dq:
            return []
        self.size -= len(dq)
        return list(dq)

    def __len__(self) -> int:
        return self.size


class CapabilityQueues:
    def __init__(self) -> None:
        self.queues: dict[str, FairQueue] = {}

    def push(self, task: Task, front: bool = False) -> None:
        queue = self.queues.get(task.caps_key)
        if queue is None:
            queue = self.queues[task.caps_key] = FairQueue()
        if front:
            queue.push_front(task)
        else:
            queue.push(task)

    def remove(self, task: Task) -> bool:
        queue = self.queues.get(task.caps_key)
        return queue.remove(task) if queue is not None else False

    def non_empty(self) -> list[tuple[str, FairQueue]]:
        return [(k, q) for k, q in self.queues.items() if q.size]

    def depth(self) -> dict[str, int]:
        return {k: q.size for k, q in self.queues.items() if q.size}

    def remove_client(self, client: bytes) -> list[Task]:
        removed: list[Task] = []
        for queue in self.queues.values():
            removed.extend(queue.remove_client(client))
        return removed
