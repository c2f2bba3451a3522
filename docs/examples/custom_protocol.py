"""A protocol of your own: newline-delimited text over the upgraded socket.

Run it: ``python docs/examples/custom_protocol.py`` (it starts its own
server from trio_upgrade.testing).
"""

from __future__ import annotations

import trio

import trio_upgrade
from trio_upgrade import BuildContext, InvalidUpgrade, Offer, RawStream, Response
from trio_upgrade.testing import RawServerProtocol, open_upgrade_server


class LineConnection:
    """What the caller gets: lines in, lines out."""

    def __init__(self, stream: RawStream, max_line: int) -> None:
        self.stream = stream
        self.max_line = max_line
        self._buffer = b""

    async def send_line(self, text: str) -> None:
        await self.stream.send_all(text.encode() + b"\n")

    async def receive_line(self) -> str:
        while b"\n" not in self._buffer:
            if len(self._buffer) > self.max_line:
                raise trio_upgrade.ProtocolError("line too long")
            data = await self.stream.receive_some()
            if not data:
                raise trio_upgrade.ConnectionClosed(None, normal=True)
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def __aenter__(self) -> LineConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _LineOffer(Offer[LineConnection]):
    def headers(self) -> list[tuple[str, str]]:
        return [("Lines-Max", "1024")]

    def validate(self, response: Response) -> None:
        # The protocol's own rule: the server must say how long a line may be.
        if "lines-max" not in response.headers:
            raise InvalidUpgrade(
                "no Lines-Max in the 101",
                response=response,
                expected="Lines-Max: <bytes>",
                received="nothing",
            )

    async def build(
        self, stream: trio.abc.Stream, leftover: bytes, context: BuildContext
    ) -> LineConnection:
        await trio.lowlevel.checkpoint()
        limit = int(context.response.headers.get("lines-max") or "1024")
        raw = RawStream(stream, leftover, protocol=self.token)
        return LineConnection(raw, limit)


class Lines(trio_upgrade.UpgradeProtocol[LineConnection]):
    @property
    def token(self) -> str:
        return "lines/1"

    def offer(self, target: object) -> Offer[LineConnection]:
        return _LineOffer(self.token)


async def shout(stream: RawStream, request: trio_upgrade.Request) -> None:
    """The server side: answers every line in capitals."""
    async for data in stream:
        await stream.send_all(data.upper())


async def main() -> str:
    server_side = RawServerProtocol("lines/1", shout, headers=[("Lines-Max", "64")])
    async with open_upgrade_server([server_side]) as server:
        # The return type is LineConnection: mypy knows it from Lines.
        conn = await trio_upgrade.upgrade(server.url(), Lines())
        async with conn:
            await conn.send_line("hello")
            reply = await conn.receive_line()
            print(reply, conn.max_line)
            return reply


if __name__ == "__main__":
    trio.run(main)
