"""A WebSocket client that says goodbye on Ctrl-C.

Run it: ``python docs/examples/graceful_shutdown.py``. It starts a loopback
server, runs the client below in a child process, interrupts the child as
Ctrl-C would (SIGINT), and prints the close code the server saw: 1001,
"going away". Run the client alone, and press Ctrl-C yourself, with
``python docs/examples/graceful_shutdown.py client ws://HOST:PORT/``.
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

# -- the client ----------------------------------------------------------


async def client(url: str) -> None:
    # Ctrl-C raises KeyboardInterrupt in here; the block ends with it, and
    # says goodbye to the server on its way out, as on any exception.
    async with trio_upgrade.open_upgrade(url, "websocket") as ws:
        await ws.send("ready")
        async for message in ws:  # until the server closes, or Ctrl-C
            print("got", message, flush=True)


def run_client(url: str) -> int:
    try:
        trio.run(client, url)
    except KeyboardInterrupt:
        # The server was told already: close code 1001, "going away".
        print("interrupted: said goodbye", flush=True)
    return 0


# -- the demonstration: a server, the client in a child process, a signal ----


async def main() -> tuple[int | None, int, str]:
    """Interrupt the client: (the close code the server saw, the client's
    exit status, what it printed)."""
    ready = trio.Event()
    codes: list[int | None] = []

    async def handler(ws: ServerWebSocket) -> None:
        try:
            async for message in ws:
                if message == "ready":
                    await ws.send("welcome")
                    ready.set()
        except trio_upgrade.ConnectionClosed:
            pass  # lost without a close frame: close_code says 1006
        codes.append(ws.close_code)

    protocol = WebSocketServerProtocol(handler=handler)
    async with open_upgrade_server([protocol]) as server:
        # The child imports the same trio_upgrade as this process.
        package = os.path.dirname(os.path.dirname(trio_upgrade.__file__))
        env = {**os.environ, "PYTHONPATH": package}
        command = [sys.executable, __file__, "client", server.url(scheme="ws")]
        async with trio.open_nursery() as nursery:
            # Cancelled (should this fail first), run_process kills it.
            process = await nursery.start(
                partial(
                    trio.run_process,
                    command,
                    stdout=subprocess.PIPE,
                    env=env,
                    check=False,
                )
            )
            await ready.wait()  # connected, and waiting for messages
            process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            output = b""
            while chunk := await process.stdout.receive_some():
                output += chunk
            status = await process.wait()
        await server.wait_closed(1)
    print(f"the server saw close code {codes[0]}; the client exited with {status}")
    return codes[0], status, output.decode()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        sys.exit(run_client(sys.argv[2]))
    trio.run(main)
