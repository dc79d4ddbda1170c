"""The worker: an agent process that runs tasks in child processes it can kill."""
