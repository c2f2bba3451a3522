"""Unix socket paths for tests: short, fresh, removed afterwards.

A Unix socket path must fit ``sockaddr_un.sun_path`` (108 bytes on Linux,
104 on macOS, the final NUL included), and pytest's ``tmp_path`` under
``/tmp/pytest-of-<user>/pytest-<n>/<test name>`` can be longer than that.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator

import pytest

__all__ = ["needs_unix", "socket_path"]

needs_unix = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX"), reason="this platform has no Unix sockets"
)


@pytest.fixture
def socket_path() -> Iterator[str]:
    """A path where no file exists yet, in a directory of its own."""
    directory = tempfile.mkdtemp(prefix="tu-", dir="/tmp")
    try:
        yield f"{directory}/s.sock"
    finally:
        shutil.rmtree(directory, ignore_errors=True)
