"""``request()`` stays a checkpoint with one pass of the run loop fewer.

Having waited for the response head, ``HTTP2Connection.request`` takes a
body that came with it without yielding again (docs/perf/http2-requests.rst).
These tests pin down what must not change with that: the call is still a
checkpoint whatever arrives when, a cancelled request still resets its
stream, and bodies that need more reads still come whole.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from h2_helpers import h2c_server

import trio_upgrade
from trio_upgrade import H2C, HTTP2Options
from trio_upgrade.testing._http2 import pattern

pytestmark = pytest.mark.timeout(30)


async def test_request_is_a_checkpoint_however_its_answer_comes() -> None:
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url("/"), ["h2c"])
            async with conn:
                await conn.upgrade_response.read()
                # A small body (with its head in one read), an empty one,
                # and one of many reads and window updates.
                for size in (16, 0, 300_000):
                    with trio.testing.assert_checkpoints():
                        response = await conn.request("GET", f"/bytes/{size}")
                    assert response.content == pattern(size)
                # The head already there when the request looks for it: a
                # second task read it while this one was not waiting.
                async with trio.open_nursery() as nursery:
                    results: list[bytes] = []

                    async def get(size: int) -> None:
                        with trio.testing.assert_checkpoints():
                            response = await conn.request("GET", f"/bytes/{size}")
                        results.append(response.content)

                    for size in (10, 20, 30):
                        nursery.start_soon(get, size)
                assert sorted(results, key=len) == [pattern(n) for n in (10, 20, 30)]


async def test_a_cancelled_request_resets_its_stream_and_the_connection_goes_on() -> (
    None
):
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url("/"), ["h2c"])
            async with conn:
                await conn.upgrade_response.read()
                with trio.CancelScope() as scope:
                    scope.cancel()
                    await conn.request("GET", "/bytes/16")
                assert scope.cancelled_caught
                # Cancelled while it waits: its stream is reset and dropped.
                with trio.move_on_after(0.2):
                    await conn.request("GET", "/hang")
                assert repr(conn).endswith(", 0 streams>")
                response = await conn.request("GET", "/bytes/100")
                assert response.content == pattern(100)


def test_protocols_without_options_share_one_checked_default() -> None:
    # Built once, not at every handshake: "h2c" and H2C() use the same
    # frozen HTTP2Options, equal to a fresh one.
    assert H2C().options is H2C().options
    assert H2C().options == HTTP2Options()
    assert H2C(HTTP2Options(max_body_size=10)).options.max_body_size == 10
