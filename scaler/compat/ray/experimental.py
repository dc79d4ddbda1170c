"""``ray.experimental``: only ``tqdm_ray`` is offered; every other public name refuses, naming itself."""

from __future__ import annotations

from scaler.compat.ray import tqdm_ray
from scaler.compat.ray.unsupported import module_getattr

__getattr__ = module_getattr("ray.experimental")

__all__ = ["tqdm_ray"]
