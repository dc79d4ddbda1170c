"""Error payloads the scheduler itself creates (it pickles only its own exception types)."""

from __future__ import annotations

import pickle
from typing import Any

from scaler import errors


def error_frames(kind: str, text: str) -> list[Any]:
    """Frames in the format of ``serialization.dumps_exception``: a pickled ``(exception, text)``."""
    cls = getattr(errors, kind, errors.ScalerError)
    return [pickle.dumps((cls(text), text), protocol=5)]
