"""Sphinx configuration for trio_upgrade's documentation."""

from __future__ import annotations

import trio_upgrade

project = "trio_upgrade"
copyright = "2026, the trio_upgrade developers"
version = release = trio_upgrade.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxcontrib_trio",
]

# No intersphinx: documentation builds must work offline. References to
# trio, h11, wsproto, h2 and the standard library are therefore left
# unresolved on purpose and ignored below, instead of being dead links.
nitpick_ignore_regex = [
    (r"py:.*", r"(trio|h11|h2|wsproto|ssl|typing|collections|contextlib)\..*"),
    (r"py:.*", r"(ConnT_co|T|Any|Self|NoneType|Ellipsis)"),
    (r"py:.*", r"(Request|Response|Headers|Limits|Target|Offer|BuildContext)"),
    (r"py:.*", r"trio_upgrade\._.*"),
    (r"py:.*", r"(bytes|bytearray|memoryview|str|int|float|bool|object)"),
    (r"py:.*", r"(Sequence|Mapping|Iterable|Iterator|AsyncIterator|Awaitable)"),
    (r"py:.*", r"(Callable|BaseException|Exception|ValueError|OSError|TypeError)"),
    # Inherited docstrings of trio.abc name its classes unqualified.
    (r"py:.*", r"(HalfCloseableStream|AsyncResource|SendStream|ReceiveStream|Stream)"),
    (r"py:.*", r"(HalfCloseableStream|AsyncResource|SendStream|ReceiveStream)\..*"),
    (r"py:.*", r"(HeadersArg|DEFAULT_ROUTES|wait_send_all_might_not_block)"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "alabaster"
exclude_patterns = ["_build"]
