"""Shared pieces of the HTTP/2 tests: raw frames and server shortcuts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import h2.config
import h2.connection
import trio
from hyperframe.frame import Frame, SettingsFrame

from trio_upgrade.testing import UpgradeServer, open_upgrade_server
from trio_upgrade.testing._http2 import H2CServerProtocol


def frame_bytes(frame: Frame) -> bytes:
    return bytes(frame.serialize())


def server_settings(**values: int) -> bytes:
    """A server SETTINGS frame (the server preface) with raw values."""
    frame = SettingsFrame(0)
    for name, value in values.items():
        frame.settings[getattr(SettingsFrame, name)] = value
    return frame_bytes(frame)


def server_state(*, validate: bool = True) -> h2.connection.H2Connection:
    """A server-side h2 state after the upgrade, for scripting raw replies."""
    config = h2.config.H2Configuration(
        client_side=False, header_encoding=None, validate_outbound_headers=validate
    )
    state = h2.connection.H2Connection(config)
    state.initiate_upgrade_connection()
    return state


@asynccontextmanager
async def h2c_server(
    protocol: H2CServerProtocol | None = None, **options: Any
) -> AsyncIterator[tuple[UpgradeServer, H2CServerProtocol]]:
    """The shared upgrade server with ``protocol`` (default routes) for h2c."""
    protocol = protocol if protocol is not None else H2CServerProtocol()
    async with open_upgrade_server([protocol], **options) as server:
        yield server, protocol


@asynccontextmanager
async def prior_knowledge_server(
    protocol: H2CServerProtocol | None = None,
) -> AsyncIterator[tuple[str, H2CServerProtocol]]:
    """An HTTP/2-only server (like nghttpd): ``(url, protocol)``."""
    protocol = protocol if protocol is not None else H2CServerProtocol()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, host="127.0.0.1"),
            protocol.serve_prior_knowledge,
            0,
        )
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}/", protocol
        nursery.cancel_scope.cancel()
