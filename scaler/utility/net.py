"""Address helpers: parse ``tcp://host:port``, find a free loopback port, tell loopback apart."""

from __future__ import annotations

import ipaddress
import socket


def parse_tcp(address: str) -> tuple[str, int]:
    if not address.startswith("tcp://"):
        raise ValueError(f"address {address!r} must look like tcp://HOST:PORT")
    host, sep, port = address[6:].rpartition(":")
    if not sep or not host:
        raise ValueError(f"address {address!r} must look like tcp://HOST:PORT")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"address {address!r}: port {port!r} is not a number") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"address {address!r}: port out of range")
    return host.strip("[]"), number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
