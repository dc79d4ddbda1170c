"""``scaler_worker_adapter_local --config configs/local.toml``: scale local worker processes."""

from __future__ import annotations

from scaler.adapters.cli import main_for


def main() -> None:
    main_for("local")


if __name__ == "__main__":
    main()
