import socket
import subprocess
import sys

import pytest
from netguard import NetworkAccessError


def test_non_loopback_connection_is_blocked():
    with socket.socket() as s, pytest.raises(NetworkAccessError):
        s.connect(("8.8.8.8", 53))


def test_dns_lookup_of_real_host_is_blocked():
    with pytest.raises(NetworkAccessError):
        socket.getaddrinfo("storage.googleapis.com", 443)


def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass


def test_guard_is_active_in_subprocesses():
    code = "import socket; socket.getaddrinfo('example.com', 80)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "blocked DNS lookup of 'example.com'" in result.stderr
