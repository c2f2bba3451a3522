"""Scripted servers: a list of steps run instead of normal HTTP handling.

A script is data (frozen dataclasses), run by one function here, so a test
reads as the byte-level story it stages::

    import pytest
    import trio_upgrade
    from trio_upgrade.testing import Close, Script, Send, open_upgrade_server
    from trio_upgrade.testing import response_head

    async def test_a_101_cut_short():
        head = response_head(101, [("Upgrade", "echo")])
        script = Script([Send(head[:20]), Close()])
        async with open_upgrade_server(["echo"], script=script) as server:
            with pytest.raises(trio_upgrade.InvalidResponse):
                await trio_upgrade.upgrade(server.url(), ["echo"])

Every step is a checkpoint and ends when the client goes away, and the
server's ``connection_timeout`` bounds the whole script, so no step can hang
a test. Steps that send without end (:class:`Repeat`) also stop at a byte
cap, because an in-memory client that stops reading would otherwise buffer
without limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import h11
import trio

from .._sansio._messages import Request
from .._transport._stream import RawStream
from ._handlers import run_handler
from ._http import RECEIVE_SIZE, read_request
from ._records import ConnectionRecord, TrackedStream

__all__ = [
    "REPEAT_LIMIT",
    "Abort",
    "Close",
    "Echo",
    "Handle",
    "Hang",
    "ReadRequest",
    "Repeat",
    "Script",
    "Send",
    "SendSlowly",
    "Sleep",
    "Step",
    "run_script",
]

#: Bytes a :class:`Repeat` without ``times`` sends at most. 64 MiB is a
#: thousand times the client's default head and refusal-body limits (64 KiB),
#: so a client that reads without bound is caught well before the cap, and
#: on loopback it takes well under a second to send.
REPEAT_LIMIT = 64 * 1024 * 1024


def _check_delay(name: str, value: float) -> None:
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")


@dataclass(frozen=True)
class ReadRequest:
    """Read the next request head (and drop its body) with h11; record it.

    The bytes after it stay buffered for the following steps (:class:`Echo`,
    :class:`Handle`, another ``ReadRequest``). The script stops here if the
    client closes instead, or sends something h11 rejects (recorded as the
    connection's ``error``; nothing is answered: the script owns the bytes).
    """


@dataclass(frozen=True)
class Send:
    """Send ``data`` in one write (``send_all``)."""

    data: bytes


@dataclass(frozen=True)
class SendSlowly:
    """Send ``data`` in writes of ``chunk`` bytes, ``delay`` seconds apart.

    Raises:
        ValueError: ``chunk`` < 1 or ``delay`` < 0.
    """

    data: bytes
    chunk: int = 1
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk!r}")
        _check_delay("delay", self.delay)


@dataclass(frozen=True)
class Sleep:
    """Do nothing for ``seconds`` (reading nothing either)."""

    seconds: float

    def __post_init__(self) -> None:
        _check_delay("seconds", self.seconds)


@dataclass(frozen=True)
class Repeat:
    """Send ``data`` ``times`` times, ``delay`` seconds apart.

    With ``times=None`` it goes on until the client goes away, the
    connection times out, or :data:`REPEAT_LIMIT` bytes were sent: an endless
    stream of 1xx responses, an endless header line, a chunked or
    close-delimited body that never ends.

    Raises:
        ValueError: ``times`` < 0, ``delay`` < 0, or empty ``data`` sent
            without end.
    """

    data: bytes
    times: int | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.times is not None and self.times < 0:
            raise ValueError(f"times must be >= 0 or None, got {self.times!r}")
        if self.times is None and not self.data:
            raise ValueError("repeating empty data without end sends nothing")
        _check_delay("delay", self.delay)


@dataclass(frozen=True)
class Echo:
    """Send back every byte received, buffered ones first, until end of stream."""


@dataclass(frozen=True)
class Hang:
    """Answer nothing: read and drop what comes until the client closes.

    A server that never answers. Reading (rather than sleeping) lets the
    server see the client's close, so tests can still check it happened.
    """


@dataclass(frozen=True)
class Close:
    """End the script; the server then closes the connection politely.

    Politely: it half-closes, so the client reads everything sent so far and
    then end of stream, and waits briefly for the client to close before
    closing the socket (a socket closed with unread input sends a reset,
    which can destroy data the client has not read yet).
    """


@dataclass(frozen=True)
class Abort:
    """Close the connection at once, without half-close or waiting."""


ScriptHandler = Callable[[RawStream], Awaitable[None]]


@dataclass(frozen=True)
class Handle:
    """Hand the connection to ``handler`` as a :class:`~trio_upgrade.RawStream`.

    The stream yields the buffered bytes (after the last request read) first.
    The escape hatch for anything the other steps cannot express. What
    ``handler`` raises fails the test, and a stopping server lets it finish
    (see :meth:`UpgradeServer.stop`).
    """

    handler: ScriptHandler


#: Any one step of a :class:`Script`.
Step = (
    ReadRequest
    | Send
    | SendSlowly
    | Sleep
    | Repeat
    | Echo
    | Hang
    | Close
    | Abort
    | Handle
)

_STEP_TYPES = (
    ReadRequest,
    Send,
    SendSlowly,
    Sleep,
    Repeat,
    Echo,
    Hang,
    Close,
    Abort,
    Handle,
)


@dataclass(frozen=True)
class Script:
    """Steps the server runs on a connection instead of its normal handling.

    Attributes:
        steps: run in order; the script ends after the last one, or at
            :class:`Close`, :class:`Abort`, or when a :class:`ReadRequest`
            finds no request. The connection is then closed as by
            :class:`Close` (unless aborted).
        read_request: read (and record) one request head before the first
            step, as a leading :class:`ReadRequest` would.

    Raises:
        TypeError: an element of ``steps`` is not a step.
    """

    steps: Sequence[Step]
    read_request: bool = True

    def __post_init__(self) -> None:
        steps = tuple(self.steps)
        for step in steps:
            if not isinstance(step, _STEP_TYPES):
                raise TypeError(f"not a script step: {step!r}")
        object.__setattr__(self, "steps", steps)


class _Run:
    """One script's run on one connection: the stream and unread bytes."""

    def __init__(
        self,
        stream: TrackedStream,
        record: ConnectionRecord,
        on_request: Callable[[Request], None],
        max_head_size: int,
    ) -> None:
        self.stream = stream
        self.record = record
        self.on_request = on_request
        self.max_head_size = max_head_size
        self.buffer = bytearray()

    async def receive(self) -> bytes:
        if self.buffer:
            await trio.lowlevel.checkpoint()
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        return bytes(await self.stream.receive_some(RECEIVE_SIZE))


async def _read_request(run: _Run) -> bool:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=run.max_head_size)
    # A fresh h11 per request: the script wrote its own bytes, so h11's view
    # of the previous exchange would be wrong; it only frames this request.
    if run.buffer:  # (receive_data(b"") would mean end of stream to h11)
        conn.receive_data(bytes(run.buffer))
        run.buffer.clear()
    try:
        request = await read_request(run.stream, conn)
    except h11.RemoteProtocolError as exc:
        run.record.error = str(exc)
        return False
    if request is None:
        return False
    run.on_request(request)
    run.buffer[:] = conn.trailing_data[0]
    return True


async def _repeat(run: _Run, step: Repeat) -> None:
    count = 0
    sent = 0
    while step.times is None or count < step.times:
        if step.times is None and sent >= REPEAT_LIMIT:
            return
        await run.stream.send_all(step.data)
        count += 1
        sent += len(step.data)
        if step.delay:
            await trio.sleep(step.delay)


async def _step(run: _Run, step: Step) -> bool:
    """Run one step; ``False`` ends the script."""
    # Every step is a checkpoint, even one with nothing to do (empty data,
    # zero times), so a script can always be cancelled between steps.
    await trio.lowlevel.checkpoint()
    stream = run.stream
    match step:
        case ReadRequest():
            return await _read_request(run)
        case Send(data):
            await stream.send_all(data)
        case SendSlowly(data, chunk, delay):
            for start in range(0, len(data), chunk):
                if start:
                    await trio.sleep(delay)
                await stream.send_all(data[start : start + chunk])
        case Sleep(seconds):
            await trio.sleep(seconds)
        case Repeat():
            await _repeat(run, step)
        case Echo():
            while data := await run.receive():
                await stream.send_all(data)
        case Hang():
            while await run.receive():
                pass
        case Close():
            return False
        case Abort():
            await stream.aclose()
            return False
        case Handle(handler):
            raw = RawStream(stream, bytes(run.buffer))
            run.buffer.clear()
            await run_handler(handler, raw)
    return not stream.closed


async def run_script(
    script: Script,
    stream: TrackedStream,
    record: ConnectionRecord,
    on_request: Callable[[Request], None],
    *,
    max_head_size: int,
) -> None:
    """Run ``script`` on ``stream``; the caller closes the stream afterwards.

    Raises:
        trio.BrokenResourceError: the client reset the connection.
        Exception: whatever a :class:`Handle` handler raised.
    """
    run = _Run(stream, record, on_request, max_head_size)
    steps: tuple[Step, ...] = tuple(script.steps)
    if script.read_request:
        steps = (ReadRequest(), *steps)
    for step in steps:
        if not await _step(run, step):
            return
