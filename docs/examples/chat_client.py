"""A chat client: lines typed are sent, messages are printed as they arrive.

Two tasks share one WebSocket: one reads the keyboard and sends, the other
receives and prints. The client leaves cleanly, telling the server why:
close code 1000 when the input ends (Ctrl-D), 1001 on Ctrl-C.

Run it against a server of yours (POSIX: stdin is read with
``trio.lowlevel.FdStream``)::

    python docs/examples/chat_client.py client ws://HOST:PORT/room

or run ``python docs/examples/chat_client.py`` for the demonstration: a
loopback chat server, the client in a child process that is given two lines
and then interrupted as Ctrl-C would do (SIGINT).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial

import trio

import trio_upgrade
from trio_upgrade.testing import (
    ServerWebSocket,
    WebSocketServerProtocol,
    open_upgrade_server,
)

#: A line longer than this is sent in pieces: memory stays bounded whatever
#: arrives on stdin.
MAX_LINE = 64 * 1024

# -- the client ----------------------------------------------------------


async def chat(url: str, keyboard: trio.abc.ReceiveStream) -> None:
    async with trio_upgrade.open_upgrade(url, "websocket") as ws:
        goodbye = (1000, "end of input")
        async with trio.open_nursery() as nursery:

            async def stop_on_ctrl_c(*, task_status: trio.TaskStatus[None]) -> None:
                nonlocal goodbye
                # While this is open, Ctrl-C is a signal to read, not a
                # KeyboardInterrupt: the tasks stop where they are waiting.
                with trio.open_signal_receiver(signal.SIGINT) as signals:
                    task_status.started()
                    async for _ in signals:
                        goodbye = (1001, "interrupted")
                        nursery.cancel_scope.cancel()
                        return

            async def print_messages() -> None:
                try:
                    async for message in ws:  # until the server closes
                        print(message, flush=True)
                    print(f"the server closed: {ws.close_code}", flush=True)
                except trio_upgrade.ConnectionClosed as exc:
                    print(f"connection lost: {exc}", flush=True)
                nursery.cancel_scope.cancel()  # nobody to send to any more

            await nursery.start(stop_on_ctrl_c)
            nursery.start_soon(print_messages)
            print("connected: type lines, Ctrl-D or Ctrl-C to leave", flush=True)
            await send_lines(ws, keyboard)
            nursery.cancel_scope.cancel()  # the input ended: stop receiving
        # Both tasks have stopped; the block is not cancelled, so this is an
        # ordinary closing handshake (a no-op if the server closed first).
        await ws.aclose(*goodbye)


async def send_lines(
    ws: trio_upgrade.WebSocketConnection, keyboard: trio.abc.ReceiveStream
) -> None:
    """Send each line of ``keyboard`` as a text message, until it ends."""
    pending = b""
    while data := await keyboard.receive_some():
        pending += data
        *lines, pending = pending.split(b"\n")
        if len(pending) > MAX_LINE:
            lines.append(pending)
            pending = b""
        for line in lines:
            if line.strip():
                await ws.send(line.decode(errors="replace").rstrip("\r"))
    if pending.strip():
        await ws.send(pending.decode(errors="replace"))


def run_client(url: str) -> int:
    # A copy of the descriptor: FdStream closes what it is given.
    keyboard = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    try:
        trio.run(chat, url, keyboard)
    except KeyboardInterrupt:
        # Ctrl-C before the signal receiver was open (while connecting): the
        # block, if it was entered, said goodbye with 1001 on its way out.
        print("interrupted", flush=True)
        return 130  # what shells report for a program ended by SIGINT
    return 0


# -- the demonstration: a chat server, the client in a child process --------


async def read_until(
    stream: trio.abc.ReceiveStream, text: bytes, seen: bytearray
) -> None:
    """Read ``stream`` into ``seen`` until ``text`` is in it."""
    while text not in seen:
        data = await stream.receive_some()
        if not data:
            raise RuntimeError(f"the client ended before printing {text!r}: {seen!r}")
        seen += data


async def main() -> tuple[int | None, str | None, int, str]:
    """Type two lines and press Ctrl-C: (the close code and reason the server
    saw, the client's exit status, what it printed)."""
    closes: list[tuple[int | None, str | None]] = []

    async def room(ws: ServerWebSocket) -> None:
        await ws.send("welcome to the room")
        try:
            async for message in ws:
                assert isinstance(message, str)  # the client sends text
                await ws.send(f"someone said: {message}")
        except trio_upgrade.ConnectionClosed:
            pass  # lost without a close frame: close_code is 1006
        closes.append((ws.close_code, ws.close_reason))

    async with open_upgrade_server([WebSocketServerProtocol(room)]) as server:
        # The child imports the same trio_upgrade as this process.
        package = os.path.dirname(os.path.dirname(trio_upgrade.__file__))
        env = {**os.environ, "PYTHONPATH": package}
        command = [sys.executable, __file__, "client", server.url(scheme="ws")]
        output = bytearray()
        async with trio.open_nursery() as nursery:
            # Cancelled (should this fail first), run_process kills it.
            process = await nursery.start(
                partial(
                    trio.run_process,
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                    check=False,
                )
            )
            await read_until(process.stdout, b"welcome to the room\n", output)
            await process.stdin.send_all(b"hello\nis anyone here?\n")
            await read_until(process.stdout, b"someone said: is anyone here?\n", output)
            process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            while data := await process.stdout.receive_some():
                output += data
            status = await process.wait()
        await server.wait_closed(1)
    (code, reason), text = closes[0], output.decode()
    print(text, end="")
    print(f"the server saw {code} {reason!r}; the client exited with {status}")
    return code, reason, status, text


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        sys.exit(run_client(sys.argv[2]))
    trio.run(main)
