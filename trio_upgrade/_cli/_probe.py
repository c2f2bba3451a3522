"""``trio-upgrade probe URL``: which upgrades does this server support?"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from .._http2._protocol import HTTP2Connection
from .._options import Strategy
from .._sansio._errors import Attempt, UpgradeRefused
from .._sansio._messages import Response
from .._websocket import WebSocketConnection
from ._exits import Exit, exit_status
from ._settings import Settings

__all__ = ["Row", "offers", "probe"]

#: The response header fields the table shows.
NOTABLE = ("upgrade", "sec-websocket-protocol", "sec-websocket-extensions", "server")
DEFAULT = ["websocket", "h2c"]
DEFAULT_TLS = ["websocket", "h2"]


@dataclass
class Row:
    """What one offer got."""

    offered: list[str]
    how: str  # "alone", "combined" or "alpn"
    status: int | None = None
    chosen: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    exit: Exit = Exit.OK
    attempts: tuple[Attempt, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "offered": self.offered,
            "how": self.how,
            "status": self.status,
            "chosen": self.chosen,
            "headers": self.headers,
            "seconds": round(self.seconds, 6),
            "error": self.error,
            "requests": [
                str(a.request) for a in self.attempts if a.request is not None
            ],
            "responses": [
                str(a.response) for a in self.attempts if a.response is not None
            ],
        }


def offers(url: str, protocols: list[str] | None) -> list[tuple[list[str], str]]:
    """What to try: each protocol alone, then the HTTP/1.1 ones together."""
    secure = url.lower().startswith(("https:", "wss:"))
    tokens = protocols or (DEFAULT_TLS if secure else DEFAULT)
    plan = [([t], "alpn" if t == "h2" else "alone") for t in tokens]
    upgrades = [t for t in tokens if t != "h2"]
    if len(upgrades) > 1:
        plan.append((upgrades, "combined"))
    return plan


def _notable(response: Response | None) -> dict[str, str]:
    if response is None:
        return {}
    found = {}
    for name in NOTABLE:
        values = response.headers.get_all(name)
        if values:
            found[name] = ", ".join(values)
    return found


async def _try(settings: Settings, url: str, offered: list[str], how: str) -> Row:
    row = Row(offered, how)
    start = time.monotonic()
    try:
        strategy: Strategy = "combined" if how == "combined" else "sequential"
        conn = await settings.upgrade(url, offered, strategy=strategy)
    except UpgradeRefused as exc:
        row.status, row.exit = exc.status_code, Exit.REFUSED
        row.headers = _notable(exc.response)
        row.attempts = exc.attempts
        if exc.location is not None:
            row.headers["location"] = exc.location
    except Exception as exc:
        row.exit = exit_status(exc)  # re-raises a bug
        row.error = f"{type(exc).__name__}: {exc}"
        row.attempts = tuple(getattr(exc, "attempts", ()))
    else:
        row.seconds = time.monotonic() - start
        row.chosen = conn.protocol
        row.attempts = conn.attempts
        response = conn.handshake_response
        row.status = None if response is None else response.status_code
        row.headers = _notable(response)
        if isinstance(conn, WebSocketConnection):
            await conn.aclose(1000, "probe done")
        elif isinstance(conn, HTTP2Connection):
            if response is not None:
                await conn.upgrade_response.aclose()
            await conn.aclose()
        else:
            await trio.aclose_forcefully(conn)
        return row
    row.seconds = time.monotonic() - start
    return row


def _table(rows: list[Row]) -> list[str]:
    header = ["offered", "status", "chosen", "time", "notable headers"]
    cells = []
    for row in rows:
        offered = ", ".join(row.offered)
        if row.how == "alpn":
            offered += " (ALPN)"
        elif row.how == "combined":
            offered += " (one request)"
        if row.error is not None:
            status = "error"
        elif row.status is None:
            status = "ALPN h2" if row.chosen else "-"
        else:
            status = str(row.status)
        notable = "; ".join(f"{k}: {v}" for k, v in row.headers.items())
        if row.error is not None:
            notable = row.error
        took = f"{row.seconds * 1000:.0f} ms"
        cells.append([offered, status, row.chosen or "-", took, notable])
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(4)]
    lines = []
    for r in [header, *cells]:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
            + "  "
            + r[4]
        )
    return [line.rstrip() for line in lines]


def status_of(rows: list[Row]) -> Exit:
    """0 when any offer was chosen; else 1 when the server answered; else
    the first error's status."""
    if any(row.chosen for row in rows):
        return Exit.OK
    if any(row.exit == Exit.REFUSED for row in rows):
        return Exit.REFUSED
    return rows[0].exit if rows else Exit.OK


async def probe(settings: Settings) -> Exit:
    """Try every offer in turn (one connection each) and report."""
    args, console = settings.args, settings.console
    rows = []
    for offered, how in offers(args.url, args.protocols):
        row = await _try(settings, args.url, offered, how)
        rows.append(row)
        if console.verbose:
            console.info(f"# {', '.join(offered)} ({how})")
            console.attempts(row.attempts)
    if args.json:
        console.data(json.dumps([row.as_json() for row in rows], indent=2))
    else:
        for line in _table(rows):
            console.data(line)
    return status_of(rows)
