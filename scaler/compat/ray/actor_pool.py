"""``ray.util.actor_pool``: where Ray programs also import ``ActorPool`` from."""

from __future__ import annotations

from scaler.compat.ray.unsupported import module_getattr
from scaler.compat.ray.util import ActorPool

__getattr__ = module_getattr("ray.util.actor_pool")

__all__ = ["ActorPool"]
