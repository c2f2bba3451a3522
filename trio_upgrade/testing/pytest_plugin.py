"""pytest fixtures for applications tested against the upgrade server.

Enable them in a ``conftest.py``::

    pytest_plugins = ["trio_upgrade.testing.pytest_plugin"]

They need pytest-trio (the fixtures are async and run in the test's Trio
run). This module imports pytest, so the library never imports it: pytest is
not a dependency of trio_upgrade.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ._server import UpgradeServer, open_upgrade_server

__all__ = ["pytest_configure", "upgrade_server"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``upgrade_server`` marker (for ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        "upgrade_server(*args, **kwargs): arguments for open_upgrade_server() "
        "in the upgrade_server fixture",
    )


@pytest.fixture
async def upgrade_server(
    request: pytest.FixtureRequest,
) -> AsyncIterator[UpgradeServer]:
    """A running :class:`~trio_upgrade.testing.UpgradeServer` on loopback.

    By default a raw echo server for the token ``echo``. Configure it for one
    test with the marker, which takes
    :func:`~trio_upgrade.testing.open_upgrade_server`'s
    arguments::

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

    It is stopped after the test, its connections closed.
    """
    marker = request.node.get_closest_marker("upgrade_server")
    args: tuple[Any, ...] = marker.args if marker else ()
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    async with open_upgrade_server(*args, **kwargs) as server:
        yield server
