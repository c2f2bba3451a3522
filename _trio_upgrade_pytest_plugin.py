"""trio_upgrade's pytest plugin: the ``upgrade_server`` fixtures.

Installing trio_upgrade registers this module with pytest (the ``pytest11``
entry point ``trio_upgrade``), so pytest loads it in every run of every
project that has trio_upgrade installed, whether its tests use Trio or not.
It therefore imports nothing but pytest at load time: trio_upgrade (about
half a second of imports) and pytest-trio are imported by a fixture when a
test takes it. It lives outside the ``trio_upgrade`` package because
importing ``trio_upgrade.anything`` imports ``trio_upgrade`` first (the same
reason Hypothesis's plugin is a top-level module).

``-p no:trio_upgrade`` switches it off; with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``
set, ``-p trio_upgrade`` switches it on.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from trio_upgrade.testing import UpgradeServer

__all__ = ["pytest_configure", "upgrade_server", "upgrade_server_in_memory"]

#: The marker that passes arguments to open_upgrade_server().
MARKER = "upgrade_server"

#: How to run an async test with Trio, for the error messages.
HOW_TO_RUN = (
    "set trio_mode = true in the pytest configuration, or mark the test "
    "with @pytest.mark.trio"
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``upgrade_server`` marker (for ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*args, **kwargs): arguments for trio_upgrade.testing."
        "open_upgrade_server() in the upgrade_server fixtures",
    )


def _anyio_backend(request: pytest.FixtureRequest) -> str | None:
    """The anyio backend the test runs on, when anyio's plugin runs it."""
    if "anyio_backend" not in request.fixturenames:
        return None
    backend = request.getfixturevalue("anyio_backend")
    name = backend[0] if isinstance(backend, tuple) else backend
    return str(name)


@pytest.fixture
def _trio_upgrade_in_trio(request: pytest.FixtureRequest) -> None:
    """Fail the test, saying what is missing, unless Trio will run it.

    The fixtures below are async: only a test that pytest-trio (or anyio's
    plugin, on its Trio backend) runs in a Trio run can have them. pytest's
    own message for the other cases names neither the cause nor the remedy.
    This fixture is set up first, as a dependency.
    """
    name = request.fixturename  # the fixture that needs Trio
    for fixture in ("upgrade_server", "upgrade_server_in_memory"):
        if fixture in request.fixturenames:
            name = fixture
            break
    if name == "upgrade_server_in_memory" and _server_arguments(request)[1].get("tcp"):
        pytest.fail(
            f"{request.node.name}: upgrade_server_in_memory serves memory "
            "streams only, but its marker asks for tcp=True (take upgrade_server).",
            pytrace=False,
        )
    if not inspect.iscoroutinefunction(request.function):
        pytest.fail(
            f"{request.node.name} uses the async fixture {name!r}: the test "
            f"must be an async def run by Trio ({HOW_TO_RUN}).",
            pytrace=False,
        )
    backend = _anyio_backend(request)
    if backend is not None:
        if backend != "trio":
            pytest.fail(
                f"{request.node.name} uses {name!r}, a Trio server, on the "
                f"anyio backend {backend!r}: parametrize anyio_backend with "
                "'trio' only.",
                pytrace=False,
            )
        return
    if not request.config.pluginmanager.has_plugin("trio"):
        pytest.fail(
            f"{request.node.name} uses {name!r}, which runs in the test's Trio "
            "run: install pytest-trio (pip install pytest-trio), then "
            f"{HOW_TO_RUN}.",
            pytrace=False,
        )
    if request.node.get_closest_marker("trio") is None:
        pytest.fail(
            f"{request.node.name} uses {name!r} but Trio does not run the "
            f"test: {HOW_TO_RUN}.",
            pytrace=False,
        )


def _server_arguments(
    request: pytest.FixtureRequest,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return (), {}
    return marker.args, dict(marker.kwargs)


@pytest.fixture
async def upgrade_server(
    request: pytest.FixtureRequest, _trio_upgrade_in_trio: None
) -> AsyncIterator[UpgradeServer]:
    """A running :class:`~trio_upgrade.testing.UpgradeServer` on loopback TCP.

    By default a raw echo server for the token ``echo``, on ``127.0.0.1``
    and a free port: connect to :meth:`~trio_upgrade.testing.UpgradeServer.url`.
    Configure it for one test (or a class, or a module with ``pytestmark``)
    with the ``upgrade_server`` marker, which takes
    :func:`~trio_upgrade.testing.open_upgrade_server`'s arguments::

        import pytest
        import trio_upgrade

        @pytest.mark.upgrade_server(["echo", "chat"], choose="server")
        async def test_server_prefers_echo(upgrade_server):
            offer = ["chat", "echo"]  # in one request: the server picks
            url = upgrade_server.url()
            async with trio_upgrade.open_upgrade(
                url, offer, strategy="combined"
            ) as conn:
                assert conn.protocol == "echo"

    It is stopped after the test as the ``async with`` block of
    ``open_upgrade_server`` is: running handlers may finish, and whatever
    one raised fails the test.
    """
    from trio_upgrade.testing import open_upgrade_server

    args, kwargs = _server_arguments(request)
    async with open_upgrade_server(*args, **kwargs) as server:
        yield server


@pytest.fixture
async def upgrade_server_in_memory(
    request: pytest.FixtureRequest, _trio_upgrade_in_trio: None
) -> AsyncIterator[UpgradeServer]:
    """The same server over memory streams: no socket, no port.

    Each :meth:`~trio_upgrade.testing.UpgradeServer.connect_in_memory` call
    is a new connection to it: pass it as ``transport=`` with any URL (its
    host and path go in the request)::

        import trio_upgrade

        async def test_in_memory(upgrade_server_in_memory):
            server = upgrade_server_in_memory
            conn = await trio_upgrade.upgrade(
                "http://test/", "echo", transport=await server.connect_in_memory()
            )
            async with conn:
                await conn.send_all(b"ping")
                assert await conn.receive_some() == b"ping"
            assert server.requests[0].target == "/"

    The ``upgrade_server`` marker configures it too (except ``tcp``).
    """
    from trio_upgrade.testing import open_upgrade_server

    args, kwargs = _server_arguments(request)
    kwargs["tcp"] = False
    async with open_upgrade_server(*args, **kwargs) as server:
        yield server
