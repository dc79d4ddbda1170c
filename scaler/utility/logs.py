"""One logging setup for every Scaler process: level from flag or SCALER_LOG_LEVEL, to stderr."""

from __future__ import annotations

import logging
import os


def setup_logging(process: str, level: str | None = None) -> None:
    chosen = (level or os.environ.get("SCALER_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, chosen, logging.INFO),
        format=f"%(asctime)s %(levelname)s {process}[%(process)d] %(name)s: %(message)s",
    )
