"""Property tests of the sans-I/O handshake: any chunking, any bytes."""

from __future__ import annotations

import itertools

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_upgrade import InvalidResponse, Limits, Raw, ResponseTooLarge
from trio_upgrade._sansio._handshake import (
    NEED_DATA,
    Event,
    Handshake,
    Informational,
    Refused,
    Switched,
    build_request,
)
from trio_upgrade._sansio._messages import Headers, Request
from trio_upgrade._sansio._url import parse_url

TARGET = parse_url("http://t.test/")
INFORMATIONAL = [
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n",
    b"HTTP/1.1 102 Processing\r\n\r\n",
]
SWITCH = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: p\r\nConnection: upgrade\r\n\r\n"
)


def new_handshake(limits: Limits | None = None) -> Handshake:
    hs = Handshake(limits or Limits())
    hs.send_request(build_request(TARGET, [Raw("p").offer(TARGET)], []))
    return hs


def feed(hs: Handshake, chunks: list[bytes]) -> tuple[list[Event], list[bytes]]:
    """Feed chunks until a final outcome; return events and unfed chunks."""
    events: list[Event] = []
    pending = list(chunks)
    while pending:
        hs.receive_data(pending.pop(0))
        while (event := hs.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, (Switched, Refused)):
                return events, pending
    return events, pending


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(max_examples=300, deadline=None)
@given(
    informational=st.lists(st.sampled_from(INFORMATIONAL), max_size=5),
    payload=st.binary(max_size=200),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
)
def test_any_chunking_gives_the_same_switch_and_keeps_every_byte(
    informational: list[bytes], payload: bytes, cuts: list[int]
) -> None:
    data = b"".join(informational) + SWITCH + payload
    events, unfed = feed(new_handshake(), split(data, cuts))
    assert [type(e) for e in events] == [Informational] * len(informational) + [
        Switched
    ]
    switched = events[-1]
    assert isinstance(switched, Switched)
    assert switched.leftover + b"".join(unfed) == payload


@settings(max_examples=300, deadline=None)
@given(noise=st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0)))
def test_arbitrary_bytes_give_events_or_a_typed_error(
    noise: bytes, cuts: list[int]
) -> None:
    hs = new_handshake(Limits(max_head_size=256, max_refusal_body=64))
    try:
        events, _ = feed(hs, [*split(noise, cuts), b""])
    except InvalidResponse:
        return  # the only error allowed (ResponseTooLarge is one)
    # Without an error, the bytes parsed as responses: the EOF at the end
    # guarantees a final outcome unless a switch came first.
    assert events
    assert isinstance(events[-1], (Switched, Refused))


@settings(max_examples=200, deadline=None)
@given(
    status=st.integers(min_value=200, max_value=599),
    body=st.binary(max_size=300),
    chunked=st.booleans(),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_refusal_body_is_bounded_and_exact(
    status: int, body: bytes, chunked: bool, cuts: list[int]
) -> None:
    if status in (204, 304):
        body = b""
    if chunked and body:
        framing = b"Transfer-Encoding: chunked\r\n"
        encoded = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    else:
        framing = f"Content-Length: {len(body)}\r\n".encode()
        encoded = body
    data = f"HTTP/1.1 {status} X\r\n".encode() + framing + b"\r\n" + encoded
    limit = 100
    events, _ = feed(new_handshake(Limits(max_refusal_body=limit)), split(data, cuts))
    refused = events[-1]
    assert isinstance(refused, Refused)
    assert refused.response.status_code == status
    assert refused.body == body[:limit]
    if len(body) != limit:
        assert refused.truncated == (len(body) > limit)
    else:
        # Exactly at the bound, whether more was coming depends on whether
        # the end of the message had arrived yet: unknowable, so either.
        assert refused.body == body


@settings(max_examples=100, deadline=None)
@given(body=st.binary(min_size=1, max_size=300))
def test_refusal_fed_whole_is_complete_up_to_the_bound(body: bytes) -> None:
    data = f"HTTP/1.1 404 X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    events, _ = feed(new_handshake(Limits(max_refusal_body=100)), [data])
    refused = events[-1]
    assert isinstance(refused, Refused)
    assert refused.truncated == (len(body) > 100)
    assert refused.reusable == (len(body) <= 100)


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(min_value=200, max_value=300),
    informational=st.booleans(),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_head_size_limit_does_not_depend_on_the_chunking(
    size: int, informational: bool, cuts: list[int]
) -> None:
    limit = 250
    status = b"103 Early Hints" if informational else b"101 Switching Protocols"
    start = b"HTTP/1.1 " + status + b"\r\nX-Pad: "
    head = start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"
    data = head + (SWITCH if informational else b"") + b"payload"
    hs = new_handshake(Limits(max_head_size=limit))
    if size > limit:
        with pytest.raises(ResponseTooLarge):
            feed(hs, split(data, cuts))
    else:
        events, _ = feed(hs, split(data, cuts))
        assert isinstance(events[-1], Switched)


# Field names and values around what h11 accepts: tokens, separators,
# whitespace at the ends or inside, control bytes, NUL, obs-text, non-Latin-1.
_NAMES = st.one_of(
    st.sampled_from(
        ["X-A", "Origin", "Host", "Expect", "Connection", "Content-Length", "x y", ""]
    ),
    st.text(alphabet="aZ-_:\t\x00é", min_size=0, max_size=4),
)
_VALUES = st.text(alphabet="a1 \t\r\n\x00\x0b\x7f\xe9\u20ac,=", max_size=6)


def _h11_reference(request: Request) -> bytes | type[Exception]:
    """What h11 alone writes for ``request``, or the type of its error."""
    conn = h11.Connection(h11.CLIENT)
    try:
        event = h11.Request(
            method=request.method,
            target=request.target,
            headers=request.headers.raw(),
        )
        return (conn.send(event) or b"") + (conn.send(h11.EndOfMessage()) or b"")
    except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
        return type(exc)


@settings(max_examples=150, deadline=None)
@given(
    fields=st.lists(st.tuples(_NAMES, _VALUES), max_size=5),
    host=st.booleans(),
    target=st.sampled_from(["/", "/a?b=c", "/é", "/ x"]),
)
def test_request_bytes_and_errors_are_h11s(
    fields: list[tuple[str, str]], host: bool, target: str
) -> None:
    # send_request writes the head itself and tells h11 of it by a stand-in
    # event: the bytes, the errors and h11's state afterwards must be those
    # of h11 writing the whole request.
    headers = [("Host", "t.test")] if host else []
    request = Request("GET", target, Headers([*headers, *fields]))
    expected = _h11_reference(request)
    hs = Handshake(Limits())
    if isinstance(expected, bytes):
        assert hs.send_request(request) == expected
        reference = h11.Connection(h11.CLIENT)
        reference.send(
            h11.Request(method="GET", target=target, headers=request.headers.raw())
        )
        reference.send(h11.EndOfMessage())
        assert hs._conn.states == reference.states
        assert (
            hs._conn.client_is_waiting_for_100_continue
            == reference.client_is_waiting_for_100_continue
        )
    else:
        with pytest.raises(expected):
            hs.send_request(request)


def test_stand_in_request_still_reads_the_switch() -> None:
    # Two handshakes with the same state fields share one cached stand-in;
    # each still parses its own 101 and keeps the bytes after it.
    for tail in (b"one", b"two"):
        hs = new_handshake()
        hs.receive_data(SWITCH + tail)
        event = hs.next_event()
        assert isinstance(event, Switched)
        assert event.leftover == tail
