"""Following redirects of the upgrade request, and what each hop may carry.

Sans-I/O: given the current target and a refusal, :class:`RedirectChain`
says where the request goes next, or raises the :class:`RedirectError` that
ends the call; it also gives the header fields each hop may send. The trio
code in ``_upgrade`` opens and closes the connections.

The rules, and why (docs/howto/redirects-and-auth.rst says the same):

* 301, 302, 303, 307 and 308 are followed alike: the upgrade request is a
  ``GET`` without a body, which every one of them keeps a ``GET`` (RFC 9110
  §15.4; 303 turns other methods into ``GET``). 300, 304 and 305 are not
  redirects to follow: they stay :class:`UpgradeRefused`, as does a
  redirect without a usable ``Location`` (missing, several, not an
  http/https/ws/wss URL, or one the offers cannot be sent to).
* TLS is never given up: ``https``/``wss`` to ``http``/``ws`` is refused.
* The same URL twice is a loop, refused at once.
* Credentials go to the first origin only. Once a redirect leaves it, the
  caller's ``Authorization``, ``Proxy-Authorization``, ``Cookie`` and
  ``Host`` fields, and the Basic credentials of ``auth=`` or the URL, are
  dropped for the rest of the call, even if a later redirect comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._auth import BasicAuth
from ._errors import RedirectError, RedirectReason
from ._messages import Response
from ._redact import SENSITIVE_FIELDS
from ._url import Target, resolve_location

__all__ = ["REDIRECT_STATUSES", "RedirectChain"]

#: The statuses that are followed (RFC 9110 §15.4.2-4, 8, 9; RFC 7538).
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: Fields bound to the first origin, dropped when a redirect leaves it:
#: credentials, and ``Host`` (a caller's ``Host`` names the first server).
_ORIGIN_BOUND = SENSITIVE_FIELDS | {"host"}


def _key(target: Target) -> tuple[bool, str, int, str]:
    # ws and http name the same request: a loop through both is one loop.
    return (*target.origin, target.target)


class RedirectChain:
    """The redirects of one call: where it went, and what it may still send.

    Args:
        start: the URL of the first request.
        follow: whether redirects are followed at all.
        max_redirects: how many may be followed.
        fields: the caller's header fields, checked.
        auth: Basic credentials for the first origin, or ``None``.
        check: raises :exc:`ValueError` for a target the offers cannot be
            sent to (an upgrade to TLS on a TLS connection); such a
            redirect is not followed.
    """

    def __init__(
        self,
        start: Target,
        *,
        follow: bool,
        max_redirects: int,
        fields: Sequence[tuple[str, str]],
        auth: BasicAuth | None,
        check: Callable[[Target], None] | None = None,
    ) -> None:
        self.follow = follow
        self._check = check
        self.max_redirects = max_redirects
        self.urls = [start.url]
        self._origin = start.origin
        self._seen = {_key(start)}
        self._fields = list(fields)
        if auth is not None:
            self._fields.insert(0, ("Authorization", auth.authorization))
        #: Whether a redirect has left the first origin.
        self.left_origin = False

    @property
    def fields(self) -> list[tuple[str, str]]:
        """The header fields (credentials included) the next request sends."""
        return self._fields

    def next_target(self, current: Target, response: Response) -> Target | None:
        """Where ``response`` to a request for ``current`` sends the call next.

        ``None`` when it is not a redirect to follow: not followed at all, not
        one of :data:`REDIRECT_STATUSES`, or without one ``Location``.

        Raises:
            ValueError: the ``Location`` is not a URL that can be requested
                (:class:`InvalidURL`), or ``check`` refused it: the refusal
                stands, and the caller chains this error to it.
            RedirectError: following it would downgrade TLS, loop, or pass
                ``max_redirects`` (its ``attempts`` left for the caller).
        """
        if not self.follow or response.status_code not in REDIRECT_STATUSES:
            return None
        locations = set(response.headers.get_all("location"))
        if len(locations) != 1:
            return None
        target = resolve_location(current, locations.pop())
        if self._check is not None:
            self._check(target)
        reason: RedirectReason | None = None
        if current.secure and not target.secure:
            reason = "insecure"
        elif _key(target) in self._seen:
            reason = "loop"
        elif len(self.urls) > self.max_redirects:
            reason = "too_many"
        if reason is not None:
            raise RedirectError(
                reason,
                response=response,
                location=target.url,
                chain=[*self.urls, target.url],
            )
        self.urls.append(target.url)
        self._seen.add(_key(target))
        if target.origin != self._origin and not self.left_origin:
            self.left_origin = True
            self._fields = [
                (name, value)
                for name, value in self._fields
                if name.lower() not in _ORIGIN_BOUND
            ]
        return target
