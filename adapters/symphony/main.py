"""``scaler_worker_adapter_symphony --config configs/symphony.toml``: borrow Symphony slots for workers."""

from __future__ import annotations

from scaler.adapters.cli import main_for


def main() -> None:
    main_for("symphony")


if __name__ == "__main__":
    main()
