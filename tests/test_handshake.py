"""The sans-I/O handshake core: every input fed whole, byte by byte and with
trailing bytes, as h11's own tests do."""

from __future__ import annotations

import ast
import pathlib

import pytest

import trio_upgrade
from trio_upgrade import (
    TLS,
    InvalidResponse,
    Limits,
    ProtocolNotOffered,
    Raw,
    ResponseTooLarge,
)
from trio_upgrade._sansio._handshake import (
    NEED_DATA,
    Event,
    Handshake,
    Informational,
    Refused,
    Switched,
    build_request,
    select_offer,
)
from trio_upgrade._sansio._messages import Headers, Response
from trio_upgrade._sansio._url import parse_url

TARGET = parse_url("http://example.test:8080/chat?room=1")
SWITCH = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: my-proto\r\n"
    b"Connection: Upgrade\r\n"
    b"\r\n"
)


def _request() -> bytes:
    offer = Raw("my-proto").offer(TARGET)
    return Handshake(Limits()).send_request(build_request(TARGET, [offer], []))


def _run(chunks: list[bytes], limits: Limits | None = None) -> list[Event]:
    """Feed ``chunks`` one at a time; return every non-NEED_DATA event."""
    hs = Handshake(limits or Limits())
    offer = Raw("my-proto").offer(TARGET)
    hs.send_request(build_request(TARGET, [offer], []))
    events: list[Event] = []
    for chunk in chunks:
        hs.receive_data(chunk)
        while True:
            event = hs.next_event()
            if event is NEED_DATA:
                break
            events.append(event)
            if isinstance(event, (Switched, Refused)):
                return events
    return events


def _three_ways(data: bytes) -> list[list[bytes]]:
    return [[data], [data[i : i + 1] for i in range(len(data))]]


def test_request_bytes() -> None:
    data = _request()
    assert data.startswith(b"GET /chat?room=1 HTTP/1.1\r\n")
    assert b"Host: example.test:8080\r\n" in data
    assert b"Connection: Upgrade\r\n" in data
    assert b"Upgrade: my-proto\r\n" in data
    assert data.endswith(b"\r\n\r\n")
    # A GET upgrade request has no body and so no framing headers.
    assert b"Content-Length" not in data and b"Transfer-Encoding" not in data


def test_request_lists_offers_in_order_and_merges_connection_options() -> None:
    class WithOption(Raw):
        def offer(self, target):  # type: ignore[no-untyped-def]
            offer = super().offer(target)
            offer.connection_options = ("HTTP2-Settings",)
            return offer

    offers = [WithOption("b").offer(TARGET), Raw("a").offer(TARGET)]
    request = build_request(TARGET, offers, [("X-Extra", "1")], [("Origin", "o")])
    assert request.headers.get("upgrade") == "b, a"
    assert request.headers.get("connection") == "Upgrade, HTTP2-Settings"
    assert request.headers.get("x-extra") == "1"
    assert request.headers.get("origin") == "o"


@pytest.mark.parametrize("name", ["Upgrade", "connection", "Content-Length", "TE"])
def test_reserved_headers_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="set by the upgrade handshake"):
        build_request(TARGET, [Raw("x").offer(TARGET)], [], [(name, "v")])


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("X-A", "a\r\nInjected: 1", "control characters"),
        ("X-A", "a\x00", "control characters"),
        ("Bad Name", "v", "invalid header name"),
        ("", "v", "invalid header name"),
    ],
)
def test_malformed_headers_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_request(TARGET, [Raw("x").offer(TARGET)], [], [(name, value)])


def test_caller_may_set_host_and_user_agent() -> None:
    request = build_request(
        TARGET, [Raw("x").offer(TARGET)], [], [("Host", "h"), ("User-Agent", "me")]
    )
    assert request.headers.get_all("host") == ["h"]
    assert request.headers.get_all("user-agent") == ["me"]


@pytest.mark.parametrize("trailing", [b"", b"\x00\x01first bytes of the new protocol"])
def test_switch_fed_whole_and_bytewise_keeps_trailing_bytes(trailing: bytes) -> None:
    for chunks in _three_ways(SWITCH + trailing):
        events = _run(chunks)
        assert len(events) == 1
        event = events[0]
        assert isinstance(event, Switched)
        assert event.response.status_code == 101
        assert event.response.headers.get("upgrade") == "my-proto"
        if len(chunks) == 1:
            assert event.leftover == trailing
        else:
            # Fed one byte at a time, h11 stops as soon as the head is whole;
            # later bytes are the caller's to read: nothing was consumed.
            assert event.leftover == b""


def test_switch_at_every_split_point_keeps_every_byte() -> None:
    data = SWITCH + b"payload"
    for cut in range(1, len(data)):
        hs = Handshake(Limits())
        hs.send_request(build_request(TARGET, [Raw("my-proto").offer(TARGET)], []))
        unfed = [data[:cut], data[cut:]]
        event: Event = NEED_DATA
        while event is NEED_DATA:
            hs.receive_data(unfed.pop(0))
            event = hs.next_event()
        assert isinstance(event, Switched), cut
        # Whatever the split, every byte after the head is accounted for:
        # handed over as leftover, or not yet given to the parser.
        assert event.leftover + b"".join(unfed) == b"payload", cut


@pytest.mark.parametrize("cut", range(len(SWITCH)))
def test_truncation_at_every_offset_is_a_typed_error(cut: int) -> None:
    hs = Handshake(Limits())
    hs.send_request(build_request(TARGET, [Raw("my-proto").offer(TARGET)], []))
    if cut:
        hs.receive_data(SWITCH[:cut])
        assert hs.next_event() is NEED_DATA
    hs.receive_data(b"")
    with pytest.raises(InvalidResponse) as info:
        hs.next_event()
    assert info.value.received == cut
    if cut == 0:
        assert "without sending a response" in str(info.value)
    else:
        assert f"after {cut} bytes" in str(info.value)


def test_informational_responses_are_reported_then_the_switch() -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + SWITCH
    )
    for chunks in _three_ways(data):
        events = _run(chunks)
        assert [type(e) for e in events] == [Informational, Informational, Switched]
        assert isinstance(events[1], Informational)
        assert events[1].response.status_code == 103


def test_endless_informational_responses_are_bounded() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\n" * 5
    with pytest.raises(ResponseTooLarge) as info:
        _run([data], Limits(max_informational=4))
    assert info.value.limit == 4


def test_oversized_head_is_bounded() -> None:
    head = b"HTTP/1.1 101 Switching Protocols\r\nX-Long: " + b"a" * 5000
    with pytest.raises(ResponseTooLarge) as info:
        _run([head], Limits(max_head_size=1024))
    assert info.value.limit == 1024
    assert "1024" in str(info.value)


# -- the 101 is checked like the rest of HTTP ---------------------------------


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9"])
def test_101_must_be_http_1_1(version: bytes) -> None:
    # RFC 9110 §15.2.2: 101 exists only in HTTP/1.1; an HTTP/1.0 server
    # cannot switch, and HTTP/2 has no Upgrade at all.
    data = SWITCH.replace(b"HTTP/1.1", version, 1) + b"payload"
    for chunks in _three_ways(data):
        with pytest.raises(InvalidResponse) as info:
            _run(chunks)
        assert f"expected HTTP/1.1, got {version.decode()}" in str(info.value)


def test_101_with_a_higher_http_1_minor_version_is_a_switch() -> None:
    # RFC 9110 §2.5: a higher minor version is processed as the highest
    # one implemented, here 1.1.
    (event,) = _run([SWITCH.replace(b"HTTP/1.1", b"HTTP/1.2", 1)])
    assert isinstance(event, Switched)


@pytest.mark.parametrize(
    "status_line", [b"HTTP/2 101 Switching Protocols", b"HTTP/2.0 200 OK"]
)
def test_a_status_line_of_another_major_version_is_named(status_line: bytes) -> None:
    # h11 rejects "HTTP/2" (no minor version) and accepts "HTTP/2.0": both
    # must come out as the same clear error, whatever the status.
    data = status_line + b"\r\nContent-Length: 0\r\n\r\n"
    for chunks in _three_ways(data):
        with pytest.raises(InvalidResponse, match=r"expected HTTP/1\.1, got HTTP/2"):
            _run(chunks)


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (b"HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\n\r\nno!", b"no!"),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil the close", b"until the close"),
    ],
)
def test_an_http_1_0_refusal_stays_a_refusal(data: bytes, body: bytes) -> None:
    for chunks in _three_ways(data):
        (event,) = _run([*chunks, b""])
        assert isinstance(event, Refused)
        assert event.response.http_version == "1.0"
        assert event.body == body and not event.truncated
        assert not event.reusable  # HTTP/1.0 without keep-alive


HEAD_LIMIT = 1024


def _head(status: bytes, size: int) -> bytes:
    """A response head of exactly ``size`` bytes with that status."""
    start = b"HTTP/1.1 " + status + b"\r\nX-Pad: "
    end = b"\r\n\r\n" if status.startswith(b"1") else b"\r\nContent-Length: 0\r\n\r\n"
    head = start + b"a" * (size - len(start) - len(end)) + end
    assert len(head) == size
    return head


def _segmentations(data: bytes) -> list[list[bytes]]:
    """Whole, byte by byte, and split so that the head completes in the read
    that crosses the limit (h11's own bound sees incomplete heads only)."""
    return [
        [data],
        [data[i : i + 1] for i in range(len(data))],
        [data[: HEAD_LIMIT - 8], data[HEAD_LIMIT - 8 :]],
        [data[:HEAD_LIMIT], data[HEAD_LIMIT:]],
    ]


@pytest.mark.parametrize(
    "status", [b"101 Switching Protocols", b"404 Not Found", b"103 Early Hints"]
)
def test_head_size_limit_holds_whatever_the_segmentation(status: bytes) -> None:
    limits = Limits(max_head_size=HEAD_LIMIT)
    after = SWITCH if status.startswith(b"103") else b""
    for chunks in _segmentations(_head(status, HEAD_LIMIT) + after):
        events = _run(chunks, limits)
        assert isinstance(events[0], (Informational, Switched, Refused))
        assert events[0].response.status_code == int(status[:3])
    for chunks in _segmentations(_head(status, HEAD_LIMIT + 1) + after):
        with pytest.raises(ResponseTooLarge) as info:
            _run(chunks, limits)
        assert info.value.limit == HEAD_LIMIT
        message = str(info.value)
        assert f"at most {HEAD_LIMIT} bytes" in message
        assert "Limits.max_head_size" in message


def test_each_head_is_measured_on_its_own() -> None:
    # Together the heads are three times the limit; each one fits.
    data = _head(b"100 Continue", HEAD_LIMIT) * 2 + _head(
        b"101 Switching Protocols", HEAD_LIMIT
    )
    for chunks in _segmentations(data):
        events = _run(chunks, Limits(max_head_size=HEAD_LIMIT))
        assert [type(e) for e in events] == [Informational, Informational, Switched]


@pytest.mark.parametrize(
    ("size", "fits"), [(HEAD_LIMIT, True), (HEAD_LIMIT + 1, False)]
)
def test_head_after_a_reusable_refusal_is_measured_alone(size: int, fits: bool) -> None:
    hs = Handshake(Limits(max_head_size=HEAD_LIMIT))
    hs.send_request(build_request(TARGET, [Raw("a").offer(TARGET)], []))
    hs.receive_data(_head(b"404 Not Found", HEAD_LIMIT))
    first = hs.next_event()
    assert isinstance(first, Refused) and first.reusable
    hs.send_request(build_request(TARGET, [Raw("b").offer(TARGET)], []))
    head = _head(b"101 Switching Protocols", size)
    hs.receive_data(head[:100])
    assert hs.next_event() is NEED_DATA
    hs.receive_data(head[100:])
    if fits:
        assert isinstance(hs.next_event(), Switched)
    else:
        with pytest.raises(ResponseTooLarge):
            hs.next_event()


def test_garbage_is_an_invalid_response() -> None:
    with pytest.raises(InvalidResponse, match=r"expected an HTTP/1\.1 response"):
        _run([b"SSH-2.0-OpenSSH_9.2\r\n\r\n"])


@pytest.mark.parametrize("eof", [False, True])
def test_an_http2_only_server_is_named_as_such(eof: bool) -> None:
    # nghttpd writes its SETTINGS frame at once and ignores HTTP/1.1.
    settings = bytes.fromhex("000006040000000000") + bytes.fromhex("000300000064")
    with pytest.raises(InvalidResponse, match="HTTP/2 SETTINGS frame") as info:
        _run([settings + b"\r\n\r\n", *([b""] if eof else [])])
    assert "connect_http2" in str(info.value)
    with pytest.raises(InvalidResponse, match="HTTP/2 SETTINGS"):
        _run([settings, b""])


def test_refusal_with_content_length_is_reusable() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    for chunks in _three_ways(data):
        (event,) = _run(chunks)
        assert isinstance(event, Refused)
        assert (event.body, event.truncated, event.reusable) == (b"hello", False, True)


def test_refusal_with_connection_close_is_not_reusable() -> None:
    data = (
        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno"
    )
    (event,) = _run([data])
    assert isinstance(event, Refused)
    assert event.response.status_code == 400
    assert (event.body, event.reusable) == (b"no", False)


def test_refusal_chunked_body() -> None:
    data = (
        b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    for chunks in _three_ways(data):
        (event,) = _run(chunks)
        assert isinstance(event, Refused)
        assert event.body == b"abcde" and event.reusable
        # The 426's own Upgrade header is information, not a switch.
        assert event.response.headers.get("upgrade") == "websocket"


def test_endless_chunked_body_stops_at_the_bound() -> None:
    limits = Limits(max_refusal_body=10)
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"4\r\nabcd\r\n" * 5
    )
    (event,) = _run([data], limits)
    assert isinstance(event, Refused)
    assert event.body == b"abcdabcdab"
    assert event.truncated and not event.reusable


def test_close_delimited_body_ends_at_eof() -> None:
    (event,) = _run([b"HTTP/1.1 200 OK\r\n\r\nsome body", b""])
    assert isinstance(event, Refused)
    assert event.body == b"some body"
    assert not event.reusable


def test_body_cut_short_is_still_a_refusal() -> None:
    (event,) = _run([b"HTTP/1.1 503 Busy\r\nContent-Length: 100\r\n\r\npartial", b""])
    assert isinstance(event, Refused)
    assert event.response.status_code == 503
    assert event.body == b"partial" and event.truncated


def test_upgrade_header_on_200_is_not_a_switch() -> None:
    data = b"HTTP/1.1 200 OK\r\nUpgrade: my-proto\r\nContent-Length: 0\r\n\r\n"
    (event,) = _run([data])
    assert isinstance(event, Refused)


def _response(upgrade: list[str]) -> Response:
    return Response(
        101, "Switching Protocols", Headers([("upgrade", u) for u in upgrade])
    )


def test_select_offer_is_case_insensitive_and_reads_every_field() -> None:
    offers = [Raw("websocket").offer(TARGET), Raw("h2c").offer(TARGET)]
    assert select_offer(_response(["H2C"]), offers) == 1
    assert select_offer(_response(["WebSocket"]), offers) == 0
    # Repeating the same token is not naming several protocols.
    assert select_offer(_response(["h2c", "h2c"]), offers) == 1


def test_select_offer_rejects_unoffered_and_several() -> None:
    offers = [Raw("a").offer(TARGET), Raw("b").offer(TARGET)]
    with pytest.raises(ProtocolNotOffered, match="not offered") as info:
        select_offer(_response(["c"]), offers)
    assert info.value.expected == "one of a, b"
    assert info.value.received == "Upgrade: c"
    with pytest.raises(ProtocolNotOffered, match="several"):
        select_offer(_response(["a, b"]), offers)
    with pytest.raises(ProtocolNotOffered, match="several"):
        select_offer(_response(["a", "b"]), offers)


def test_select_offer_takes_a_stack_only_from_the_offer_that_claims_it() -> None:
    # RFC 9110 7.8 / RFC 2817 3.3: "Upgrade: TLS/1.0, HTTP/1.1" lists the
    # layers bottom up; only TLS claims such a list, and only one may.
    offers = [Raw("a").offer(TARGET), TLS("TLS/1.0").offer(TARGET)]
    assert select_offer(_response(["TLS/1.0, HTTP/1.1"]), offers) == 1
    assert select_offer(_response(["TLS/1.3", "TLS/1.2"]), offers) == 1
    with pytest.raises(ProtocolNotOffered, match="several"):
        select_offer(_response(["a, HTTP/1.1"]), offers)
    both = [TLS("TLS/1.0").offer(TARGET), TLS("TLS/1.2").offer(TARGET)]
    with pytest.raises(ProtocolNotOffered, match="several"):
        select_offer(_response(["TLS/1.2, HTTP/1.1"]), both)


def test_missing_upgrade_header() -> None:
    sole = [Raw("a").offer(TARGET)]
    assert select_offer(_response([]), sole) == 0
    with pytest.raises(ProtocolNotOffered, match="does not say"):
        select_offer(_response([]), [Raw("a").offer(TARGET), Raw("b").offer(TARGET)])
    strict = Raw("a").offer(TARGET)
    strict.accept_missing_upgrade_header = False
    with pytest.raises(ProtocolNotOffered):
        select_offer(_response([]), [strict])


def test_reusable_connection_takes_a_second_request() -> None:
    hs = Handshake(Limits())
    offer = Raw("a").offer(TARGET)
    hs.send_request(build_request(TARGET, [offer], []))
    hs.receive_data(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    first = hs.next_event()
    assert isinstance(first, Refused) and first.reusable
    again = hs.send_request(build_request(TARGET, [Raw("b").offer(TARGET)], []))
    assert b"Upgrade: b\r\n" in again
    hs.receive_data(SWITCH.replace(b"my-proto", b"b"))
    assert isinstance(hs.next_event(), Switched)


# The package imported: the source tree's, or the installed wheel's.
PACKAGE = pathlib.Path(trio_upgrade.__file__).parent
SANS_IO = sorted(
    [f"_sansio.{path.stem}" for path in (PACKAGE / "_sansio").glob("_*.py")]
    + ["_protocol"]
)


def _source(name: str) -> pathlib.Path:
    path = PACKAGE.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _resolve(name: str, node: ast.ImportFrom) -> str:
    """The package-relative name of what a relative import brings in."""
    is_package = _source(name).name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def test_the_sans_io_list_is_not_empty() -> None:
    assert "_sansio._handshake" in SANS_IO
    assert "_sansio._ws_frames" in SANS_IO


@pytest.mark.parametrize("module", SANS_IO)
def test_handshake_core_does_not_import_trio(module: str) -> None:
    """The sans-I/O core and everything it imports stay free of trio."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not name:
            continue
        seen.add(name)
        tree = ast.parse(_source(name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    todo.append(_resolve(name, node))
                    continue
                names = [node.module or ""]
            else:
                continue
            for imported in names:
                assert imported.split(".")[0] != "trio", f"{name} imports trio"


# -- hosts of every form: the bytes on the wire (docs/explanation/hosts.rst)


@pytest.mark.parametrize(
    ("url", "request_line", "host"),
    [
        ("ws://[::1]:8080/", b"GET / HTTP/1.1", b"[::1]:8080"),
        ("ws://[fe80::1%25eth0]:8080/x", b"GET /x HTTP/1.1", b"[fe80::1]:8080"),
        ("wss://[::1]:443/", b"GET / HTTP/1.1", b"[::1]"),
        ("ws://bücher.example/", b"GET / HTTP/1.1", b"xn--bcher-kva.example"),
        ("ws://h/", b"GET / HTTP/1.1", b"h"),
        ("ws://h:80/", b"GET / HTTP/1.1", b"h"),
        ("wss://h:443/", b"GET / HTTP/1.1", b"h"),
        ("http://h:8080/", b"GET / HTTP/1.1", b"h:8080"),
        ("ws://h/p?a=1&b=%20", b"GET /p?a=1&b=%20 HTTP/1.1", b"h"),
        ("ws://h/p?", b"GET /p? HTTP/1.1", b"h"),
        ("ws://h/p?q#frag", b"GET /p?q HTTP/1.1", b"h"),
        ("ws://h/ü?é", b"GET /%C3%BC?%C3%A9 HTTP/1.1", b"h"),
    ],
)
def test_request_bytes_for_every_host_form(
    url: str, request_line: bytes, host: bytes
) -> None:
    target = parse_url(url)
    offer = Raw("my-proto").offer(target)
    data = Handshake(Limits()).send_request(build_request(target, [offer], []))
    lines = data.split(b"\r\n")
    assert lines[0] == request_line
    assert [line for line in lines if line.lower().startswith(b"host:")] == [
        b"Host: " + host
    ]
    assert b"%25" not in data and b"eth0" not in data and b"#" not in data
