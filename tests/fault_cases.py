"""The fault sweep: one exchange per protocol, run through a faulty proxy.

Each :class:`Scenario` makes a connection through a :class:`FaultProxy` to
a real server, does the handshake and a few first messages, and reports
what it received. :func:`sweep` runs a scenario once cleanly (to learn how
many bytes each direction carries and where the 101's head ends), then once
for every fault kind, direction and chosen offset, and returns a
description of every case that broke a rule:

* it ended within its deadline (the library's ``Limits`` timeouts are
  short; only a ``stall`` may leave the exchange waiting until the test's
  own deadline, and closing must still be prompt then);
* it ended in success or a documented error: an
  :class:`~trio_upgrade.UpgradeError` (``UpgradeTimeout``,
  ``ConnectionClosed``, ``ProtocolError``, ``HandshakeError``...), or on a
  raw stream the end of stream or ``trio.BrokenResourceError`` of Trio's
  stream contract; never a bare ``OSError`` or an h11/h2/wsproto exception;
* what it received is what the wire carried: the messages, bodies or bytes
  reported are, in order, a prefix of what an independent decoder (wsproto,
  h2, or the bytes themselves) reads from the bytes the proxy delivered
  after the 101; and unless the fault altered the data (``duplicate``), a
  prefix of what the server sent, all of it on success.

``TRIO_UPGRADE_FAULTS=all`` sweeps every offset of both directions instead
of a representative set (``nox -s faults``); ``TRIO_UPGRADE_FAULTS=N`` every
N-th offset, and the representative ones.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio
from fault_proxy import DIRECTIONS, KINDS, Fault, FaultProxy, Relay, open_fault_proxy
from wire_reference import h2_bodies, ws_messages

import trio_upgrade
from trio_upgrade import Limits, Raw, UpgradeError, WebSocket

#: Short library deadlines, so that a stall ends the handshake quickly.
LIMITS = Limits(connect_timeout=2.0, handshake_timeout=0.75, close_timeout=0.5)
#: After a fault that may leave the client waiting for good (see
#: :func:`may_wait`) has fired, how long the exchange runs on before the test
#: stops it as its caller would: longer than the handshake's deadline, so
#: that a stall in the handshake is ended by the library.
SETTLE = 1.5
#: How long any other case may take: a case still running then is waiting
#: where it should not (the library's deadlines are far shorter). Long,
#: because it is never reached when all is well, and a loaded machine may
#: be slow.
EXCHANGE_DEADLINE = 8.0
#: The hard bound of one case, closing included: beyond it, the case hung.
CASE_DEADLINE = 12.0
#: Cases run at once (each holds two sockets of the proxy and one of ours).
#: The client, the proxy and the in-repo server share one thread: more at
#: once would make a clean handshake miss its short deadline.
CONCURRENCY = 8 if os.environ.get("TRIO_UPGRADE_FAULTS") else 24


def may_wait(fault: Fault) -> bool:
    """Whether ``fault`` may leave the client waiting with no deadline to end it.

    After the switch nothing in the protocols bounds how long a reply takes:
    the caller's own deadline does. A stall leaves the client waiting; so
    can duplicated bytes, when they turn into the header of a frame that
    the sender never finishes; and a half-close towards the server, when
    the server waits for the rest of what it was reading instead of closing
    (hypercorn does). A fault towards the client that ends or resets the
    connection must end the exchange at once.
    """
    return fault.kind in ("stall", "duplicate") or (
        fault.kind == "half-close" and fault.direction == "up"
    )


Received = list[object]


@dataclass(frozen=True)
class Scenario:
    """One protocol's exchange, and how to read the same from the wire.

    Attributes:
        name: for messages.
        path: the URL path to use.
        run: connect to the URL and exchange, appending each message, body
            or chunk received to the list as it comes.
        expected: what a clean run receives.
        decode: what an independent decoder reads from the bytes delivered
            to the client after the 101 head, in the same units as ``run``.
        raw: a raw stream: its end of stream and ``BrokenResourceError``
            are how Trio's stream contract reports a closed connection.
    """

    name: str
    path: str
    run: Callable[[str, Received], Awaitable[None]]
    expected: Sequence[object]
    decode: Callable[[bytes], list[object]]
    raw: bool = False


# -- WebSocket ------------------------------------------------------------------

WS_MESSAGES: tuple[str | bytes, ...] = ("hello", bytes(range(256)) * 2, "é" * 70)


async def _ws_run(url: str, received: Received) -> None:
    ws = await trio_upgrade.upgrade(url, [WebSocket(compression=None)], limits=LIMITS)
    async with ws:
        for message in WS_MESSAGES:
            await ws.send(message)
            received.append(await ws.receive())


def websocket_scenario(path: str = "/") -> Scenario:
    return Scenario("websocket", path, _ws_run, WS_MESSAGES, ws_messages)


# -- h2c ------------------------------------------------------------------------

H2_UPLOAD = bytes(range(256)) * 8


async def _h2_run(url: str, received: Received) -> None:
    conn = await trio_upgrade.upgrade(url, ["h2c"], limits=LIMITS)
    async with conn:
        received.append(await conn.upgrade_response.read())
        response = await conn.request("POST", "/echo", body=H2_UPLOAD)
        received.append(response.content)
        response = await conn.request("GET", "/")
        received.append(response.content)


def h2c_scenario() -> Scenario:
    return Scenario("h2c", "/", _h2_run, (b"ok", H2_UPLOAD, b"ok"), h2_bodies)


# -- raw ------------------------------------------------------------------------

RAW_DATA = bytes(range(256)) * 4


class EndOfStream(Exception):
    """The raw stream ended (``receive_some()`` returned ``b""``) early."""


async def _raw_run(url: str, received: Received) -> None:
    stream = await trio_upgrade.upgrade(url, [Raw("echo")], limits=LIMITS)
    async with stream:
        await stream.send_all(RAW_DATA)
        got = 0
        while got < len(RAW_DATA):
            chunk = await stream.receive_some()
            if not chunk:
                raise EndOfStream
            received.extend(chunk)
            got += len(chunk)


def _raw_decode(data: bytes) -> list[object]:
    return list(data)


def raw_scenario() -> Scenario:
    return Scenario("raw", "/", _raw_run, list(RAW_DATA), _raw_decode, raw=True)


# -- the sweep ------------------------------------------------------------------


def _after_head(data: bytes) -> bytes | None:
    """The bytes after the 101's head, or None if the head never ended."""
    end = data.find(b"\r\n\r\n")
    return None if end < 0 else data[end + 4 :]


def _offsets(total: int, head: int) -> list[int]:
    """The representative offsets of a direction of ``total`` bytes."""
    mode = os.environ.get("TRIO_UPGRADE_FAULTS", "")
    if mode == "all":
        return list(range(total + 1))
    # TRIO_UPGRADE_FAULTS=N: every N-th offset, and the representative ones.
    every = set(range(0, total + 1, int(mode))) if mode.isdigit() else set()
    # The head's last byte (cut inside the HTTP/1.1 exchange), the new
    # protocol's first byte, a byte inside its first frame's header, the
    # middle, the last byte.
    picks = {head - 1, head, head + 2, (head + total) // 2, total - 1}
    return sorted(o for o in picks | every if 0 <= o <= total)


@dataclass
class Case:
    fault: Fault | None
    received: Received
    error: BaseException | None = None
    waited: bool = False
    relay: Relay | None = None


async def run_case(
    scenario: Scenario,
    upstream: tuple[str, int],
    fault: Fault | None,
    deadline: float = EXCHANGE_DEADLINE,
) -> Case:
    case = Case(fault, [])
    async with open_fault_proxy(upstream, fault) as proxy:
        with trio.fail_after(CASE_DEADLINE):
            async with trio.open_nursery() as nursery:
                with trio.move_on_after(deadline) as scope:
                    if fault is not None and may_wait(fault):
                        nursery.start_soon(_stop_after_settling, proxy, scope)
                    try:
                        await scenario.run(proxy.url(path=scenario.path), case.received)
                    except Exception as exc:  # judged by check(), not here
                        case.error = exc
                case.waited = scope.cancelled_caught
                nursery.cancel_scope.cancel()
        case.relay = proxy.relays[0] if proxy.relays else None
    return case


async def _stop_after_settling(proxy: FaultProxy, scope: trio.CancelScope) -> None:
    await proxy.first_relay.wait()
    await proxy.relays[0].fired_event.wait()
    await trio.sleep(SETTLE)
    scope.cancel()


def check(scenario: Scenario, case: Case) -> str | None:
    """What is wrong with the case, or None."""
    error = case.error
    fired = case.relay is not None and case.relay.fired
    kind = case.fault.kind if case.fault is not None else None
    allowed: tuple[type[BaseException], ...] = (UpgradeError,)
    if scenario.raw:
        allowed += (trio.BrokenResourceError, EndOfStream)
    if error is not None and not isinstance(error, allowed):
        return f"undocumented error {type(error).__module__}.{error!r}"
    delivered = case.relay.delivered["down"] if case.relay else b""
    after = _after_head(bytes(delivered))
    wire = scenario.decode(after) if after is not None else []
    got = case.received
    if got != wire[: len(got)]:
        return f"reported {_short(got)}, the wire carried {_short(wire)}"
    altered = fired and kind == "duplicate"
    if not altered and got != list(scenario.expected[: len(got)]):
        return f"reported {_short(got)}, the server sent {_short(scenario.expected)}"
    if case.waited:
        # A stall leaves the client waiting; so can duplicated bytes, when
        # they make a frame the sender never finishes. Either way what did
        # arrive must have been reported.
        if not (fired and case.fault is not None and may_wait(case.fault)):
            return f"still waiting at the deadline after a {kind}"
        if got != wire:
            return f"waiting, with {_short(wire[len(got) :])} arrived, unreported"
    complete = error is None and not case.waited
    if complete and not altered and len(got) != len(scenario.expected):
        return f"success with {len(got)} of {len(scenario.expected)} replies"
    if not fired and not complete:
        return f"failed without a fault: {error!r}"
    return None


def _short(items: Sequence[object]) -> str:
    text = repr(list(items))
    return text if len(text) < 120 else text[:117] + "..."


async def sweep(
    scenario: Scenario,
    upstream: tuple[str, int],
    limiter: trio.CapacityLimiter | None = None,
) -> tuple[int, list[str]]:
    """Run every fault case; return how many fired and the broken ones.

    ``limiter`` bounds how many cases run at once (``CONCURRENCY`` when
    not given); sweeps run side by side can share one.
    """
    clean = await run_case(scenario, upstream, None)
    problem = check(scenario, clean)
    assert problem is None and clean.error is None, (problem, clean.error)
    assert clean.received == list(scenario.expected)
    assert clean.relay is not None
    up, down = clean.relay.delivered["up"], clean.relay.delivered["down"]
    heads = {"up": up.find(b"\r\n\r\n") + 4, "down": down.find(b"\r\n\r\n") + 4}
    totals = {"up": len(up), "down": len(down)}
    faults = [
        Fault(kind, direction, offset)
        for direction in DIRECTIONS
        for offset in _offsets(totals[direction], heads[direction])
        for kind in KINDS
    ]
    problems: list[str] = []
    fired = 0
    limiter = limiter or trio.CapacityLimiter(CONCURRENCY)

    async def one(fault: Fault) -> None:
        nonlocal fired
        for _ in range(2):
            async with limiter:
                try:
                    case = await run_case(scenario, upstream, fault)
                except trio.TooSlowError:
                    problems.append(f"{fault}: hung past {CASE_DEADLINE} s")
                    return
            problem = check(scenario, case)
            if case.relay is not None and case.relay.fired:
                fired += 1
                break
            # The fault never fired, so this was a clean run, and a clean
            # run that failed was slowed by a loaded machine past the short
            # deadlines (the clean run of the sweep passed): once more.
            if problem is None:
                break
        if problem is not None:
            problems.append(f"{fault}: {problem}")

    async with trio.open_nursery() as nursery:
        for fault in faults:
            nursery.start_soon(one, fault)
    return fired, sorted(problems)
