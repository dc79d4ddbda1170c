"""``scaler_worker_adapter_ec2 --config configs/ec2.toml``: scale workers on EC2 instances."""

from __future__ import annotations

from scaler.adapters.cli import main_for


def main() -> None:
    main_for("ec2")


if __name__ == "__main__":
    main()
