"""HTTP Basic credentials (RFC 7617), sans-I/O.

Credentials come from the ``auth=`` option or from the URL's user info;
either way they become one ``Authorization: Basic`` field, built here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from ._redact import REDACTED
from ._syntax import FIELD_VALUE_BAD

__all__ = ["AuthArg", "BasicAuth", "check_auth"]


@dataclass(frozen=True)
class BasicAuth:
    """A user name and password, sent as ``Authorization: Basic`` (RFC 7617).

    Sent to the origin (scheme kind, host and port) of the URL given to
    :func:`~trio_upgrade.upgrade` only: a redirect to another origin drops
    them. The password is never shown: ``repr()`` gives
    ``BasicAuth(username='alice', password=[redacted])``.

    Both are encoded as UTF-8 (RFC 7617 §2.1 ``charset="UTF-8"``, what
    servers expect today).

    Args:
        username: the user-id; it may not contain ``:`` (RFC 7617 §2).
        password: the password; any text without control characters.

    Raises:
        TypeError: either is not a str.
        ValueError: ``username`` holds a ``:``, or either holds a control
            character (RFC 7617 §2 forbids them).
    """

    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        for name, value in (("username", self.username), ("password", self.password)):
            if not isinstance(value, str):
                raise TypeError(
                    f"BasicAuth {name} must be a str, got {type(value).__name__}"
                )
            if FIELD_VALUE_BAD.search(value) or "\t" in value:
                raise ValueError(f"BasicAuth {name} holds a control character")
        if ":" in self.username:
            raise ValueError(
                "a Basic user name cannot contain ':' (RFC 7617 §2): the "
                "server would split it there"
            )

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password={REDACTED})"

    @property
    def authorization(self) -> str:
        """The ``Authorization`` field value: ``Basic`` and the base64 token."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


#: What ``auth=`` takes: a :class:`BasicAuth`, or ``(username, password)``
#: as httpx and requests take it.
AuthArg = BasicAuth | tuple[str, str]


def check_auth(auth: object) -> BasicAuth:
    """The :class:`BasicAuth` that ``auth=`` stands for.

    Raises:
        TypeError: ``auth`` is neither a :class:`BasicAuth` nor a pair of
            str.
        ValueError: as :class:`BasicAuth` raises.
    """
    if isinstance(auth, BasicAuth):
        return auth
    if isinstance(auth, tuple) and len(auth) == 2:
        return BasicAuth(auth[0], auth[1])
    raise TypeError(
        "auth must be a BasicAuth or a (username, password) tuple, got "
        f"{type(auth).__name__}"
    )
