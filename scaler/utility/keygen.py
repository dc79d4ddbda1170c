"""``scaler_keygen DIR``: create the CurveZMQ keys a non-loopback scheduler and its peers use."""

from __future__ import annotations

import argparse
from pathlib import Path

from scaler.utility.security import generate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Create CurveZMQ keys for a Scaler deployment.")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    keys = generate(args.directory)
    print(f"wrote server and client keys to {keys.directory}")
    print(f"scheduler: scaler_scheduler tcp://0.0.0.0:6378 --curve-keys {keys.directory}")
    print(f"peers:     SCALER_CURVE_KEYS={keys.directory} (or --curve-keys) with client.key_secret and server.key")


if __name__ == "__main__":
    main()
