"""The scheduler: one ROUTER socket, task queues per capability set, the object store."""
