"""The embedded default: a scheduler and local workers started as fresh interpreters."""
