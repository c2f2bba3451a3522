"""HTTP syntax the library checks, defined once (RFC 9110).

Sans-I/O: nothing here imports trio. Every module that checks a token, an
``Upgrade`` protocol, a field value or a list-valued field uses these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "FIELD_VALUE_BAD",
    "PROTOCOL",
    "TOKEN",
    "TOKEN_LOWER_BYTES",
    "list_elements",
    "list_tokens",
]

# RFC 9110 §5.6.2: tchar, as the body of a character class.
_TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"

#: RFC 9110 §5.6.2: ``token = 1*tchar`` (field names, methods, parameter
#: names and values, extension names).
TOKEN = re.compile(f"[{_TCHAR}]+")

#: RFC 9110 §7.8: ``protocol = protocol-name ["/" protocol-version]``, both
#: tokens: what an ``Upgrade`` header names.
PROTOCOL = re.compile(f"[{_TCHAR}]+(?:/[{_TCHAR}]+)?")

#: A token in lower case only, as bytes: HTTP/2 field names (RFC 9113 §8.2.1
#: forbids upper case).
TOKEN_LOWER_BYTES = re.compile(f"[{_TCHAR.replace('A-Z', '')}]+".encode("ascii"))

#: RFC 9110 §5.5: a field value holds no control characters but HTAB. Above
#: all no CR, LF or NUL, which would let a value inject header lines.
FIELD_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# RFC 9110 §5.6.3: optional whitespace around list elements.
_OWS = " \t"


def list_elements(values: Iterable[str]) -> list[str]:
    """The elements of list-valued field lines, in order, spelling kept.

    Every field line counts (RFC 9110 §5.3), and empty elements are skipped
    as §5.6.1 requires of recipients.
    """
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            element = part.strip(_OWS)
            if element:
                out.append(element)
    return out


def list_tokens(values: Iterable[str]) -> list[str]:
    """:func:`list_elements`, lower-cased: tokens compare case-insensitively."""
    return [element.lower() for element in list_elements(values)]
