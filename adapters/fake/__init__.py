"""A provider for tests and simulations: local processes with injectable boot latency and failures."""
