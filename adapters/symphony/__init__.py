"""The Symphony provider: units are sessions of the ScalerWorker application on an IBM Spectrum Symphony cluster."""
