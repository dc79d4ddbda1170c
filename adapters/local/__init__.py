"""The local-process provider: units are worker processes on this host."""
