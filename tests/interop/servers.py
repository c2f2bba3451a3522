"""The third-party servers of the interop tests, and their fixture helper.

The launchers live in :mod:`benchmarks.servers`, one module shared with the
benchmarks (the project root is importable: ``pythonpath`` in
pytest's configuration); this module re-exports what the tests use and adds
:func:`started`, the body of a pytest fixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from benchmarks.servers import BIG_FILE_NAME as BIG_FILE_NAME
from benchmarks.servers import BIG_FILE_SIZE as BIG_FILE_SIZE
from benchmarks.servers import HOST as HOST
from benchmarks.servers import HYPERCORN_SOCKET as HYPERCORN_SOCKET
from benchmarks.servers import INDEX_HTML as INDEX_HTML
from benchmarks.servers import MEDIUM_FILE_NAME as MEDIUM_FILE_NAME
from benchmarks.servers import MEDIUM_FILE_SIZE as MEDIUM_FILE_SIZE
from benchmarks.servers import RunningServer as RunningServer
from benchmarks.servers import ServerStartError as ServerStartError
from benchmarks.servers import ServerUnavailable as ServerUnavailable
from benchmarks.servers import dante_server as dante_server
from benchmarks.servers import free_port as free_port
from benchmarks.servers import group_exists as group_exists
from benchmarks.servers import h2o_server as h2o_server
from benchmarks.servers import hypercorn_server as hypercorn_server
from benchmarks.servers import hypercorn_unix_server as hypercorn_unix_server
from benchmarks.servers import lighttpd_server as lighttpd_server
from benchmarks.servers import nghttpd_server as nghttpd_server
from benchmarks.servers import nginx_proxy as nginx_proxy
from benchmarks.servers import nginx_tls as nginx_tls
from benchmarks.servers import node_ws_server as node_ws_server
from benchmarks.servers import payload as payload
from benchmarks.servers import pid_exists as pid_exists
from benchmarks.servers import tinyproxy_server as tinyproxy_server
from benchmarks.servers import uvicorn_server as uvicorn_server
from benchmarks.servers import websockets_server as websockets_server


def started(
    factory: Callable[..., RunningServer], *args: object, **kwargs: object
) -> Iterator[RunningServer]:
    """Body of a pytest fixture: start a server, yield it, stop it.

    A server that is not installed skips the test, except where
    ``TRIO_UPGRADE_REQUIRE_INTEROP`` is set (CI installs every server, so
    there a missing one is a failure). After ``stop()``, no process of the
    server's group may remain.
    """
    try:
        server = factory(*args, **kwargs)
    except ServerUnavailable as exc:
        if os.environ.get("TRIO_UPGRADE_REQUIRE_INTEROP"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()
    assert not pid_exists(server.pid), f"{server} still running"
    assert not group_exists(server.pgid), f"{server} left processes behind"
