"""The test server's Unix domain socket listener, and its cleanup."""

from __future__ import annotations

import os
import socket
import stat

import trio

__all__ = ["remove_socket_file", "unix_listener"]


async def unix_listener(path: str) -> tuple[trio.SocketListener, tuple[int, int]]:
    """A listener on the Unix socket ``path``, and the identity (device,
    inode) of the file it made; ``(0, 0)`` for an abstract socket."""
    if not hasattr(socket, "AF_UNIX"):
        raise RuntimeError("Unix sockets are not supported on this platform")
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        identity = (0, 0)
        if not path.startswith("\0"):
            st = os.stat(path)
            identity = (st.st_dev, st.st_ino)
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock), identity


def remove_socket_file(path: str, identity: tuple[int, int]) -> None:
    # Only the file this server made, not one that replaced it since.
    if identity == (0, 0):
        return  # abstract namespace: no file
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == identity:
        os.unlink(path)
