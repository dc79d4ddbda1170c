"""``python -m scaler.adapters.fake.main --config F``: the fake provider's adapter (tests, benchmarks)."""

from __future__ import annotations

from scaler.adapters.cli import main_for


def main() -> None:
    main_for("fake")


if __name__ == "__main__":
    main()
