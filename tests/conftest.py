"""Shared pytest configuration for the trio_upgrade test suite."""

from __future__ import annotations

import gc
import os
import pathlib
import sysconfig
from collections.abc import Iterator

import pytest

# The upgrade_server fixtures come from the plugin that installing
# trio_upgrade registers (the pytest11 entry point), as applications get
# them: nothing to enable here. See pytest_configure below for a checkout
# whose environment holds another checkout's metadata.


def pytest_configure(config: pytest.Config) -> None:
    """Load the plugin from the source tree if the entry point did not.

    Only when the installed metadata lacks the entry point: an editable
    install made from another checkout, or before this one was reinstalled
    (entry points are read from the metadata written at install time).
    tests/test_pytest_plugin.py checks that the entry point loads it
    wherever the metadata is this tree's own or a built wheel's.
    """
    if not config.pluginmanager.has_plugin("trio_upgrade"):
        config.pluginmanager.import_plugin("_trio_upgrade_pytest_plugin")
    if os.environ.get("TRIO_UPGRADE_TEST_INSTALLED"):
        _check_installed_copy()


def _check_installed_copy() -> None:
    """Under ``nox -s package``: the suite tests the wheel, not a source tree."""
    import _trio_upgrade_pytest_plugin
    import trio_upgrade

    site = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
    for module in (trio_upgrade, _trio_upgrade_pytest_plugin):
        where = pathlib.Path(module.__file__ or "").resolve()
        if not where.is_relative_to(site):
            raise pytest.UsageError(
                f"{module.__name__} is imported from {where}, not from the "
                f"installed wheel in {site}"
            )


def _open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each points to."""
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir itself used, now closed
            continue
    return fds


@pytest.fixture(scope="module", autouse=True)
def _fds_return_to_baseline() -> Iterator[None]:
    """Every descriptor a test module opens is closed when the module ends.

    A socket left open by the library (or by a test) is a leak a
    long-lived service would pay for with every connection; the module's
    own fixtures (servers, certificates) are torn down before this check
    because an autouse fixture is set up first and so torn down last.
    Garbage is collected first so that only descriptors still reachable, or
    never closed, are reported; unreachable sockets are caught as
    ``ResourceWarning`` errors by ``filterwarnings = ["error"]``.
    """
    if not os.path.isdir("/proc/self/fd"):
        yield
        return
    gc.collect()
    before = _open_fds()
    yield
    gc.collect()
    after = _open_fds()
    leaked = {fd: what for fd, what in after.items() if before.get(fd) != what}
    assert not leaked, f"descriptors left open by this module: {leaked}"


#: Every variable that ``proxy=True`` (the default) reads, both cases.
PROXY_VARIABLES = tuple(
    name
    for base in ("ws", "wss", "http", "https", "all", "no")
    for name in (f"{base}_proxy", f"{base}_proxy".upper())
)


def _clear_proxy_environment() -> None:
    """Forget the machine's proxies, for the whole session.

    Entry points read proxies from the environment by default, so a
    developer's or a CI runner's ``http_proxy`` would send the suite's
    loopback connections to that proxy (and change what the tests prove).
    Cleared at import, before any test and before the subprocesses that
    some tests start (they inherit ``os.environ``). Tests of the feature set
    the variables with ``monkeypatch``. Package installs (``.ci/run``,
    ``noxfile.py``) happen outside pytest and still see the proxies.
    """
    for name in PROXY_VARIABLES:
        os.environ.pop(name, None)


_clear_proxy_environment()
