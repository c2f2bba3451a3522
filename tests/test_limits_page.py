"""docs/reference/limits.rst lists every limit, each with a reason.

The page's tables are generated (docs/_ext/limits_table.py) from the
dataclass fields, constructor arguments and ``#:`` comments it names, so a
field cannot be missing from a table it names; what could go missing is a
whole class, an argument left out of a ``:fields:`` list, or a new
constant. These tests catch those, without building the docs.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

import trio_upgrade

pytest.importorskip("sphinx")

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reference" / "limits.rst"
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
limits_table = importlib.import_module("limits_table")

#: Numeric module constants that are not limits, and why.
NOT_LIMITS = {
    # wire constants of RFC 9113 §4.1, §6.5, §6.8
    "_HEADER": "frame header length",
    "_SETTINGS": "frame type",
    "_GOAWAY": "frame type",
    "_ACK": "frame flag",
    "MAX_WINDOW": "RFC 9113 §6.9.1's ceiling, checked on HTTP2Options",
    "DEFAULT_WINDOW": "RFC 9113 §6.5.2's initial window, checked on HTTP2Options",
    "MORE": "a sentinel of the frame parser",
    "_INT_MASK_BELOW": "a choice of masking code path by size",
    "_KEY_BLOCK": "masking keys drawn per os.urandom call",
    "SLICE": "how often a call that need not wait still yields to Trio",
    "FG": "an enumeration value",
    "BG": "an enumeration value",
    "ABNORMAL_CLOSURE": "a close code (1006)",
    "_REPR_BYTES": "how much of a DATA frame h2's log shows (hyperframe's choice)",
    # the defaults of WebSocket's arguments, shown with them
    "DEFAULT_MAX_SIZE": "WebSocket(max_size=)",
    "DEFAULT_MAX_QUEUE": "WebSocket(max_queue=)",
    "DEFAULT_PING_INTERVAL": "WebSocket(ping_interval=)",
    "DEFAULT_PING_TIMEOUT": "WebSocket(ping_timeout=)",
    "DEFAULT_WRITE_BUFFER_LIMIT": "WebSocket(write_buffer_limit=)",
    # the defaults of Client's arguments, shown with them
    "DEFAULT_TTL": "Client(ttl=)",
    "DEFAULT_MAX_ORIGINS": "Client(max_origins=)",
}


def directives() -> dict[str, list[str] | None]:
    """The page's ``.. limits::`` targets and their ``:fields:``."""
    text = PAGE.read_text()
    found: dict[str, list[str] | None] = {}
    pattern = r"^\.\. limits:: (\S+)\n(?:   :fields: (.+)\n)?"
    for match in re.finditer(pattern, text, re.MULTILINE):
        target, fields = match.groups()
        names = fields.split() if fields else None
        if target in found and names is not None:
            found[target] = [*(found[target] or []), *names]
        else:
            found[target] = names
    return found


def listed() -> set[str]:
    """Every ``target.name`` the page's tables show."""
    names = set()
    for target, fields in directives().items():
        for name, _, _ in limits_table.rows_for(target, fields):
            names.add(f"{target}.{name}")
    return names


def test_every_table_resolves_with_a_reason_for_each_row() -> None:
    targets = directives()
    assert len(targets) >= 10
    for target, fields in targets.items():
        rows = limits_table.rows_for(target, fields)
        assert rows, target
        for name, _, reason in rows:
            # A real explanation, not a placeholder.
            assert len(reason.split()) >= 5, (target, name, reason)


@pytest.mark.parametrize(
    "cls", [trio_upgrade.Limits, trio_upgrade.HTTP2Options, trio_upgrade.Deflate]
)
def test_every_field_of_the_option_dataclasses_is_on_the_page(cls: type) -> None:
    shown = listed()
    for field in dataclasses.fields(cls):
        assert f"trio_upgrade.{cls.__name__}.{field.name}" in shown


@pytest.mark.parametrize(
    ("cls", "pattern"),
    [
        (trio_upgrade.WebSocket, r"max_|ping_|write_"),
        (trio_upgrade.Client, r"ttl|max_"),
    ],
)
def test_every_bounding_argument_is_on_the_page(cls: type, pattern: str) -> None:
    shown = listed()
    arguments = [n for n in inspect.signature(cls).parameters if re.match(pattern, n)]
    assert arguments
    for name in arguments:
        assert f"trio_upgrade.{cls.__name__}.{name}" in shown


def _constants(module: ModuleType) -> list[str]:
    """Numeric UPPER_CASE names assigned in the module's own source."""
    source = inspect.getsource(module)
    return [
        name
        for name, value in vars(module).items()
        if name.lstrip("_").isupper()
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and re.search(rf"^{name}\s*(:[^=\n]*)?=", source, re.MULTILINE)
    ]


def test_every_numeric_constant_is_a_listed_limit_or_known_not_to_be_one() -> None:
    shown = listed()
    missing = []
    for info in pkgutil.walk_packages(trio_upgrade.__path__, "trio_upgrade."):
        if info.name.endswith("pytest_plugin"):
            continue
        module = importlib.import_module(info.name)
        if not (module.__file__ or "").endswith(".py"):
            continue  # the compiled masker: no constants, no source
        for name in _constants(module):
            if name not in NOT_LIMITS and f"{info.name}.{name}" not in shown:
                missing.append(f"{info.name}.{name}")
    assert not missing, f"limits missing from {PAGE.name}: {missing}"


def test_an_unexplained_field_is_an_error() -> None:
    @dataclasses.dataclass
    class Bounds:
        """Bounds.

        Attributes:
            explained: a bound with its reason given here.
        """

        explained: int = 1
        unexplained: int = 2

    module = ModuleType("limits_page_probe")
    module.Bounds = Bounds  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        with pytest.raises(ValueError, match="unexplained is not explained"):
            limits_table.rows_for("limits_page_probe.Bounds", None)
    finally:
        del sys.modules[module.__name__]


def test_sizes_and_times_are_shown_in_their_units() -> None:
    show = limits_table.show_default
    assert show("max_head_size", 64 * 1024) == "65,536 (64 KiB)"
    assert show("max_body_size", 64 * 1024 * 1024) == "67,108,864 (64 MiB)"
    assert show("max_attempts", 8) == "8"
    assert show("connect_timeout", 10.0) == "10 s"
    assert show("ping_interval", None) == "``None``"
