"""The pytest plugin: registered by installing, cheap to load, clear errors.

The fixtures are tried where users meet them: pytest in a subprocess
(``pytester``), on small test files, with the plugin loaded from its entry
point.
"""

from __future__ import annotations

import sys

import pytest
from plugin_support import (
    PLUGIN_MODULE,
    child_pythonpath,
    entry_point,
    metadata_elsewhere,
    plugin_args,
)

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pytester(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """pytest's own, with a child importing what this process imports."""
    monkeypatch.setenv("PYTHONPATH", child_pythonpath())
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return pytester


def run(pytester: pytest.Pytester, *args: str, inline: bool) -> pytest.RunResult:
    """pytest on the files written with ``pytester``, as users run it."""
    args = ("-p", "no:cacheprovider", *plugin_args(), *args)
    if inline:
        return pytester.runpytest_inprocess(*args)
    return pytester.runpytest_subprocess(*args, timeout=50)


def test_the_entry_point_loads_it(pytestconfig: pytest.Config) -> None:
    elsewhere = metadata_elsewhere()
    if elsewhere is not None and entry_point() is None:
        pytest.skip(f"the installed metadata is another checkout's ({elsewhere})")
    ep = entry_point()
    assert ep is not None, (
        "trio_upgrade's metadata declares no pytest11 entry point: "
        "reinstall it (pip install -e .)"
    )
    assert ep.value == PLUGIN_MODULE
    # This suite's fixtures came from it: tests/conftest.py enables nothing.
    assert (
        pytestconfig.pluginmanager.get_plugin("trio_upgrade")
        is sys.modules[PLUGIN_MODULE]
    )


MARKER_MODE_TESTS = """
import pytest
import trio_upgrade
from trio_upgrade import Raw


@pytest.mark.trio
async def test_tcp(upgrade_server):
    assert upgrade_server.url().startswith("http://127.0.0.1:")
    async with await trio_upgrade.upgrade(upgrade_server.url(), Raw("echo")) as conn:
        await conn.send_all(b"ping")
        assert await conn.receive_some() == b"ping"
    assert upgrade_server.requests[0].headers.get("upgrade") == "echo"


@pytest.mark.trio
@pytest.mark.upgrade_server(["chat"], choose="server")
async def test_in_memory(upgrade_server_in_memory):
    server = upgrade_server_in_memory
    assert [p.token for p in server.protocols] == ["chat"]
    with pytest.raises(RuntimeError):
        server.port  # no socket
    transport = await server.connect_in_memory()
    async with await trio_upgrade.upgrade(
        "http://test/room", Raw("chat"), transport=transport
    ) as conn:
        await conn.send_all(b"hi")
        assert await conn.receive_some() == b"hi"
    assert server.requests[0].target == "/room"


async def test_unmarked(upgrade_server_in_memory):
    pass


def test_sync(upgrade_server):
    pass


@pytest.mark.trio
@pytest.mark.upgrade_server(tcp=True)
async def test_in_memory_with_tcp(upgrade_server_in_memory):
    pass

"""


def test_fixtures_and_their_errors(pytester: pytest.Pytester) -> None:
    # Without trio_mode: the trio marker.
    # (The suite itself, docs blocks included, uses them with trio_mode.)
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    pytester.makepyfile(test_app=MARKER_MODE_TESTS)
    result = run(pytester, "-rE", inline=True)
    result.assert_outcomes(passed=2, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*test_unmarked uses 'upgrade_server_in_memory' but Trio does not run "
            "the test: set trio_mode = true in the pytest configuration, or mark "
            "the test with @pytest.mark.trio.",
            "*test_sync uses the async fixture 'upgrade_server': the test must "
            "be an async def run by Trio (set trio_mode = true*",
            "*test_in_memory_with_tcp: upgrade_server_in_memory serves memory "
            "streams only, but its marker asks for tcp=True (take upgrade_server).",
        ]
    )


ANYIO_TESTS = """
import pytest
import trio_upgrade
from trio_upgrade import Raw


@pytest.fixture
def anyio_backend():
    return "trio"


@pytest.mark.anyio
async def test_anyio_trio(upgrade_server, anyio_backend):
    async with await trio_upgrade.upgrade(upgrade_server.url(), Raw("echo")) as conn:
        await conn.send_all(b"ping")
        assert await conn.receive_some() == b"ping"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_anyio_asyncio(upgrade_server, anyio_backend):
    pass
"""


def test_anyio_on_trio(pytester: pytest.Pytester) -> None:
    # anyio's plugin runs the fixtures when the test runs on its Trio backend.
    pytest.importorskip("anyio.pytest_plugin")
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    pytester.makepyfile(test_app=ANYIO_TESTS)
    result = run(pytester, "-rE", inline=True)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_anyio_asyncio[[]asyncio[]] uses 'upgrade_server', a Trio server, "
            "on the anyio backend 'asyncio': parametrize anyio_backend with "
            "'trio' only.",
        ]
    )


WITHOUT_PYTEST_TRIO = """
import sys


def test_loading_imported_nothing():
    assert "_trio_upgrade_pytest_plugin" in sys.modules  # loaded
    assert "trio_upgrade" not in sys.modules
    assert "pytest_trio" not in sys.modules


async def test_uses_it(upgrade_server):
    pass
"""


def test_without_pytest_trio(pytester: pytest.Pytester) -> None:
    # A project that does not use Trio: pytest-trio blocked (-p no:trio is
    # how pytest sees it absent). The plugin loads, imports nothing, and only
    # a test that takes a fixture hears what is missing.
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    pytester.makepyfile(test_app=WITHOUT_PYTEST_TRIO)
    # In a subprocess: what loading the plugin imported is seen afresh.
    result = run(pytester, "-p", "no:trio", "-p", "no:anyio", "-rE", inline=False)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_uses_it uses 'upgrade_server', which runs in the test's Trio "
            "run: install pytest-trio (pip install pytest-trio), then set "
            "trio_mode = true*",
        ]
    )
