"""h2's own CPU cost per request, client side: the floor of any h2 client."""

from __future__ import annotations

import time

import h2.config
import h2.connection
import h2.events

from ..servers import INDEX_HTML
from .minimal import h2_config
from .plan import PATH


def round_result(count: int, wall: float, cpu: float) -> dict[str, float]:
    return {"count": count, "wall": wall, "cpu": cpu, "rate": count / wall}


def sansio_floor(requests: int, batch: int, rounds: int) -> list[dict[str, float]]:
    """h2's own CPU per request, client side, with no I/O and no Trio.

    A server-side h2 connection first answers ``requests`` GETs (in batches
    of ``batch``, like a server with that stream limit) with lighttpd's
    response head and the 60-byte body; its bytes are recorded. Then a
    fresh client does exactly what a client does per request (send_headers,
    data_to_send, receive_data of the recorded answers, event dispatch,
    acknowledge_received_data), timed. Both runs make the same frames in
    the same order, so the replay parses what the server really sent.
    """
    body = INDEX_HTML
    head = [(b":method", b"GET"), (b":scheme", b"http")]
    head += [(b":authority", b"127.0.0.1:8080"), (b":path", PATH.encode())]
    answer = [
        (b":status", b"200"),
        (b"content-type", b"text/html"),
        (b"etag", b'"1751042536"'),
        (b"last-modified", b"Sat, 28 Jun 2025 16:42:16 GMT"),
        (b"content-length", str(len(body)).encode()),
        (b"accept-ranges", b"bytes"),
        (b"date", b"Sat, 28 Jun 2025 16:42:17 GMT"),
        (b"server", b"lighttpd/1.4.69"),
    ]
    server = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    server.initiate_connection()
    recorder = h2.connection.H2Connection(config=h2_config())
    recorder.initiate_connection()
    recorded: list[bytes] = []
    server.receive_data(recorder.data_to_send())
    recorded.append(server.data_to_send())
    recorder.receive_data(recorded[0])
    server.receive_data(recorder.data_to_send())
    for _ in range(requests // batch):
        for _ in range(batch):
            sid = recorder.get_next_available_stream_id()
            recorder.send_headers(sid, head, end_stream=True)
        for event in server.receive_data(recorder.data_to_send()):
            if isinstance(event, h2.events.RequestReceived):
                server.send_headers(event.stream_id, answer)
                server.send_data(event.stream_id, body, end_stream=True)
        recorded.append(server.data_to_send())
        for event in recorder.receive_data(recorded[-1]):
            if isinstance(event, h2.events.DataReceived):
                recorder.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
        server.receive_data(recorder.data_to_send())

    results = []
    for _ in range(rounds):
        client = h2.connection.H2Connection(config=h2_config())
        cpu0, t0 = time.process_time(), time.perf_counter()
        client.initiate_connection()
        client.data_to_send()
        client.receive_data(recorded[0])
        count = 0
        for chunk in recorded[1:]:
            for _ in range(batch):
                sid = client.get_next_available_stream_id()
                client.send_headers(sid, head, end_stream=True)
            client.data_to_send()
            for event in client.receive_data(chunk):
                if isinstance(event, h2.events.DataReceived):
                    client.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    count += 1
            client.data_to_send()
        results.append(
            round_result(count, time.perf_counter() - t0, time.process_time() - cpu0)
        )
        # No I/O and no server: the rate is what the CPU allows, whatever
        # else the machine is doing.
        results[-1]["rate"] = count / results[-1]["cpu"]
    return results
