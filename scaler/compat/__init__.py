"""Compatibility layers that let programs written for other engines run on Scaler."""
