"""The public namespace is exactly what the reference documents."""

from __future__ import annotations

import inspect
import pathlib
import re

import trio_upgrade
import trio_upgrade.testing

DOCS = pathlib.Path(__file__).parent.parent / "docs" / "reference"


def _documented(page: str, module: str) -> set[str]:
    text = (DOCS / page).read_text()
    names = set()
    for match in re.finditer(
        r"^\.\. (?:autoclass|autofunction|autodata|autoexception):: (\S+)",
        text,
        re.MULTILINE,
    ):
        qualified = match.group(1)
        prefix = module + "."
        if qualified.startswith(prefix) and "." not in qualified[len(prefix) :]:
            names.add(qualified[len(prefix) :])
    return names


def test_all_matches_namespace() -> None:
    # Identifiers only: pytest rewrites the asserts of every module of a
    # distribution that has a pytest plugin (an installed trio_upgrade
    # does), which adds '@py_builtins' and '@pytest_ar' to each namespace.
    names = [n for n in dir(trio_upgrade) if n.isidentifier()]
    public = {n for n in names if not n.startswith("_")}
    public -= {"testing"}  # the subpackage, imported above
    public |= {"__version__"}
    assert set(trio_upgrade.__all__) == public


def test_every_public_name_is_documented() -> None:
    documented = _documented("api.rst", "trio_upgrade") | _documented(
        "errors.rst", "trio_upgrade"
    )
    assert set(trio_upgrade.__all__) - {"__version__"} == documented


def test_testing_namespace_is_documented() -> None:
    documented = _documented("testing.rst", "trio_upgrade.testing")
    assert set(trio_upgrade.testing.__all__) == documented


def test_public_objects_claim_the_public_module() -> None:
    # Users should see trio_upgrade.X in reprs and tracebacks, not _private.
    for name in trio_upgrade.__all__:
        obj = getattr(trio_upgrade, name)
        if isinstance(obj, type) or inspect.isfunction(obj):
            assert obj.__module__ == "trio_upgrade", name
