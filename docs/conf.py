"""Sphinx configuration for trio_upgrade's documentation."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer

import trio_upgrade

project = "trio_upgrade"
copyright = "2026, the trio_upgrade developers"
version = release = trio_upgrade.__version__

# docs/_ext: the ``limits`` directive of reference/limits.rst.
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxcontrib_trio",
    "limits_table",
]

# No intersphinx: documentation builds must work offline. References to
# trio, h11, wsproto, h2 and the standard library are therefore left
# unresolved on purpose and ignored below, instead of being dead links.
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(trio|h11|h2|wsproto|ssl|typing|collections|contextlib|time|json)\..*",
    ),
    # Private classes named by the #: comments the limits page shows.
    (r"py:.*", r"(H2Reader|SharedState)\..*"),
    (r"py:.*", r"(ConnT_co|T|Any|Self|NoneType|Ellipsis)"),
    (r"py:.*", r"(Request|Response|Headers|Limits|Target|Offer|BuildContext)"),
    (r"py:.*", r"trio_upgrade\._.*"),
    (r"py:.*", r"os\.PathLike"),  # unix_socket paths
    (r"py:.*", r"(bytes|bytearray|memoryview|str|int|float|bool|object)"),
    (r"py:.*", r"(Sequence|Mapping|Iterable|Iterator|AsyncIterator|Awaitable)"),
    (r"py:.*", r"(Callable|BaseException|Exception|ValueError|OSError|TypeError)"),
    (r"py:.*", r"(Stream|HalfCloseableStream|HeadersArg|DEFAULT_ROUTES)"),
    # Type aliases of the testing server's parameters, described in prose.
    (r"py:.*", r"(ChooseArg|InformationalArg|ScriptArg|ScriptHandler)"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
# The class line carries the constructor's signature; no separate __init__
# and __new__ entries.
autodoc_class_signature = "mixed"
# Trio's stream classes document their abstract methods for implementers, at
# length; our overrides carry their own docstrings instead.
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "alabaster"
exclude_patterns = ["_build"]

#: Classes that users get from the library but never construct: their
#: constructors take internal objects, so the reference shows no signature.
MADE_BY_THE_LIBRARY = {
    "trio_upgrade.Attempt",
    "trio_upgrade.BuildContext",
    "trio_upgrade.HTTP2Connection",
    "trio_upgrade.HTTP2Response",
    "trio_upgrade.HTTP2Stream",
    "trio_upgrade.WebSocketConnection",
    "trio_upgrade.testing.ConnectionRecord",
    "trio_upgrade.testing.H2Request",
    "trio_upgrade.testing.H2ServerConnection",
    "trio_upgrade.testing.H2ServerStream",
    "trio_upgrade.testing.ServerWebSocket",
}


def _hide_constructor(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str] | None:
    """No signature for MADE_BY_THE_LIBRARY, nor for Exception's own one."""
    if what not in ("class", "exception"):
        return None
    if name not in MADE_BY_THE_LIBRARY and signature != "(*args, **kwargs)":
        return None
    # The constructor's parameter types were recorded for the "description"
    # typehints just before this event; drop them with the signature.
    app.env.current_document.autodoc_annotations.pop(name, None)
    return "", ""


def _attribute_comments() -> dict[tuple[str, int], list[str]]:
    """``#:`` comments of module-level names, by name and object identity.

    Public modules re-export names defined in private ones, where autodoc
    does not look for their comments.
    """
    found: dict[tuple[str, int], list[str]] = {}
    for info in pkgutil.walk_packages(trio_upgrade.__path__, "trio_upgrade."):
        if info.name.endswith("pytest_plugin"):
            continue
        module = importlib.import_module(info.name)
        if not (module.__file__ or "").endswith(".py"):
            continue  # the compiled masker (_sansio._ws_mask): no source
        analyzer = ModuleAnalyzer.for_module(info.name)
        for (scope, name), lines in analyzer.find_attr_docs().items():
            if scope == "" and hasattr(module, name):
                found.setdefault((name, id(getattr(module, name))), list(lines))
    return found


_COMMENTS = _attribute_comments()


def _data_docstring(
    app: Sphinx, what: str, name: str, obj: Any, options: object, lines: list[str]
) -> None:
    """A re-exported name's ``#:`` comment, never its value type's docstring."""
    if what != "data":
        return
    comment = _COMMENTS.get((name.rpartition(".")[2], id(obj)))
    if comment is not None:
        lines[:] = comment
    elif lines and "\n".join(lines).strip() == (type(obj).__doc__ or "").strip():
        lines.clear()


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-signature", _hide_constructor)
    app.connect("autodoc-process-docstring", _data_docstring)
