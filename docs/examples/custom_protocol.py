"""A protocol of your own: newline-delimited text over the upgraded socket.

Run it: ``python docs/examples/custom_protocol.py`` (it starts its own
servers from trio_upgrade.testing).
"""

from __future__ import annotations

import trio

import trio_upgrade
from trio_upgrade import BuildContext, InvalidUpgrade, Offer, RawStream, Response
from trio_upgrade.testing import RawServerProtocol, open_upgrade_server

#: The longest line this client takes, whatever the server allows.
MAX_LINE = 1024


class LineConnection:
    """What the caller gets: lines in, lines out, each at most ``max_line``
    bytes of UTF-8."""

    def __init__(self, stream: RawStream, max_line: int) -> None:
        self.stream = stream
        self.max_line = max_line
        self._buffer = bytearray()

    async def send_line(self, text: str) -> None:
        data = text.encode()
        if b"\n" in data or len(data) > self.max_line:
            raise ValueError(f"not a line of at most {self.max_line} bytes")
        await self.stream.send_all(data + b"\n")

    async def receive_line(self) -> str:
        """The next line, without its newline.

        Raises:
            ProtocolError: a line over ``max_line`` bytes, or not UTF-8.
            ConnectionClosed: the server closed (between lines: normal).
        """
        while (end := self._buffer.find(b"\n")) < 0:
            # Bounded: never more than a line and one read are kept.
            if len(self._buffer) > self.max_line:
                raise trio_upgrade.ProtocolError(
                    f"a line of more than {self.max_line} bytes"
                )
            data = await self.stream.receive_some()
            if not data:
                raise trio_upgrade.ConnectionClosed(None, normal=not self._buffer)
            self._buffer += data
        if end > self.max_line:
            raise trio_upgrade.ProtocolError(
                f"a line of more than {self.max_line} bytes"
            )
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        try:
            return line.decode()
        except UnicodeDecodeError:
            raise trio_upgrade.ProtocolError("a line that is not UTF-8") from None

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def __aenter__(self) -> LineConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _LineOffer(Offer[LineConnection]):
    def headers(self) -> list[tuple[str, str]]:
        # Added to the upgrade request, next to "Upgrade: lines/1".
        return [("Lines-Max", str(MAX_LINE))]

    def validate(self, response: Response) -> None:
        # The protocol's own rule: the 101 says how long a line may be.
        value = response.headers.get("lines-max")
        if value is None or not value.isdigit() or not 0 < int(value) <= MAX_LINE:
            raise InvalidUpgrade(
                "no usable Lines-Max in the 101",
                response=response,
                expected=f"Lines-Max: 1 to {MAX_LINE}",
                received=repr(value),
            )

    async def build(
        self, stream: trio.abc.Stream, leftover: bytes, context: BuildContext
    ) -> LineConnection:
        await trio.lowlevel.checkpoint()
        limit = int(context.response.headers.get("lines-max") or "0")  # validated
        raw = RawStream(
            stream,
            leftover,  # bytes that came with the 101: the first lines
            protocol=self.token,
            request=context.request,
            response=context.response,
            attempts=context.attempts,
        )
        return LineConnection(raw, limit)


class Lines(trio_upgrade.UpgradeProtocol[LineConnection]):
    @property
    def token(self) -> str:
        return "lines/1"

    def offer(self, target: object) -> Offer[LineConnection]:
        return _LineOffer(self.token)


async def talk(url: str) -> list[str]:
    # The return type is LineConnection: mypy knows it from Lines.
    async with await trio_upgrade.upgrade(url, Lines()) as conn:
        sent = conn.stream.handshake_request
        assert sent is not None
        lines = [f"sent Upgrade: {sent.headers.get('upgrade')}"]
        lines.append(f"the 101 allows lines of {conn.max_line} bytes")
        for text in ["hello", "how are you?"]:
            await conn.send_line(text)
            lines.append(await conn.receive_line())
        return lines


# -- the servers: the protocol's other side, and two that break its rules -----


async def shout(stream: RawStream, request: trio_upgrade.Request) -> None:
    """Answers every line in capitals."""
    async for data in stream:
        await stream.send_all(data.upper())


async def too_long(stream: RawStream, request: trio_upgrade.Request) -> None:
    await stream.send_all(b"x" * 200)  # and no newline


async def main() -> list[str]:
    good = RawServerProtocol("lines/1", shout, headers=[("Lines-Max", "64")])
    async with open_upgrade_server([good]) as server:
        lines = await talk(server.url())
    # A server that switches but does not say Lines-Max: refused by
    # validate(), and the socket closed.
    silent = RawServerProtocol("lines/1", shout)
    async with open_upgrade_server([silent]) as server:
        try:
            await talk(server.url())
        except trio_upgrade.InvalidUpgrade as exc:
            lines.append(f"InvalidUpgrade: {exc}")
    # A server that sends more than a line may hold: an error, not a buffer
    # that grows without end.
    flood = RawServerProtocol("lines/1", too_long, headers=[("Lines-Max", "64")])
    async with open_upgrade_server([flood]) as server:
        conn = await trio_upgrade.upgrade(server.url(), Lines())
        async with conn:
            try:
                await conn.receive_line()
            except trio_upgrade.ProtocolError as exc:
                lines.append(f"ProtocolError: {exc}")
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    trio.run(main)
