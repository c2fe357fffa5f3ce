"""A socket guard: any connection or DNS lookup to a non-loopback address raises.

Installed in the test process by ``conftest.py`` and in every task subprocess that kfp.local
starts through ``tests/socket_guard/sitecustomize.py`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import ipaddress
import socket

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NetworkAccessError(RuntimeError):
    """A test tried to reach a non-loopback address."""


def _is_loopback(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host in LOOPBACK_NAMES or host == "":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check_address(address: object) -> None:
    if isinstance(address, tuple) and address:
        if not _is_loopback(address[0]):
            raise NetworkAccessError(f"blocked connection to non-loopback address {address!r}")
    elif isinstance(address, str | bytes):
        return  # AF_UNIX socket path
    else:
        raise NetworkAccessError(f"blocked connection to {address!r}")


def install() -> None:
    """Patch ``socket`` so only loopback is reachable (idempotent)."""
    if getattr(socket, "_adaptune_guarded", False):
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname

    def connect(self, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check_address(address)
        return real_connect(self, address)

    def connect_ex(self, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check_address(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not _is_loopback(host):
            raise NetworkAccessError(f"blocked DNS lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host):  # type: ignore[no-untyped-def]
        if not _is_loopback(host):
            raise NetworkAccessError(f"blocked DNS lookup of {host!r}")
        return real_gethostbyname(host)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket._adaptune_guarded = True  # type: ignore[attr-defined]
