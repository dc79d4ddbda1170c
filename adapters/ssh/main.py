"""``scaler_worker_adapter_ssh --config configs/ssh.toml``: scale workers on hosts you can log into over SSH."""

from __future__ import annotations

from scaler.adapters.cli import main_for


def main() -> None:
    main_for("ssh")


if __name__ == "__main__":
    main()
