"""Worker adapters (installed as ``scaler.adapters``): the provider contract, the shared runner, providers."""
