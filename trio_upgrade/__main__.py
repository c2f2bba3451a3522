"""``trio-upgrade`` (``python -m trio_upgrade``): upgrades from the shell.

With no URL it starts the library's own upgrade server on loopback
(:mod:`trio_upgrade.testing`) and upgrades to each protocol in turn, showing
the request sent, the 101 received and the protocol chosen. With a URL it
negotiates with that server instead. ``probe URL`` and ``connect URL -p
PROTOCOL`` are the subcommands of :mod:`trio_upgrade._cli`; see
``docs/howto/cli.rst``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO, TextIO

import trio

from . import (
    Attempt,
    HTTP2Connection,
    Limits,
    RawStream,
    UpgradeError,
    UpgradeRefused,
    WebSocketConnection,
    __version__,
    upgrade,
)
from ._cli import SUBCOMMANDS, Exit, exit_status, run
from ._cli._exits import exit_table
from ._cli._run import add_network_options
from ._options import Strategy
from ._sansio._messages import Request, Response
from ._sansio._redact import redacted

DEFAULT_PROTOCOLS = ["websocket", "h2c"]
#: Over TLS, HTTP/2 is selected by ALPN ("h2"): h2c is for cleartext only.
DEFAULT_TLS_PROTOCOLS = ["websocket", "h2"]
DEMO_MESSAGE = "hello from trio_upgrade"


def default_protocols(url: str) -> list[str]:
    """What the URL mode offers when no ``-p`` is given."""
    secure = url.lower().startswith(("https:", "wss:"))
    return DEFAULT_TLS_PROTOCOLS if secure else DEFAULT_PROTOCOLS


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


class Reporter:
    """Writes the exchange in a form a person can follow."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        #: The exit status of the last failure (``Exit``), else ``OK``.
        self.status = Exit.OK

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def request(self, request: Request | None) -> None:
        if request is not None:
            self.line("  request sent:")
            self.line(_indent(str(request), "    > "))

    def response(self, response: Response | None, label: str) -> None:
        if response is not None:
            self.line(f"  {label}:")
            self.line(_indent(str(response), "    < "))


async def _exercise(conn: Any, message: str, report: Reporter) -> None:
    """Use the new protocol once, so the demo shows it really works."""
    if isinstance(conn, WebSocketConnection):
        await conn.send(message)
        reply = await conn.receive()
        report.line(f"  websocket: sent {message!r}, received {reply!r}")
    elif isinstance(conn, HTTP2Connection) and conn.handshake_response is None:
        # Selected by ALPN: no upgrading request, so no stream 1.
        response = await conn.request("GET", "/")
        body = await response.read()
        report.line(
            f"  h2: selected by ALPN; GET / answered "
            f"{response.status_code} with {len(body)} bytes"
        )
    elif isinstance(conn, HTTP2Connection):
        first = conn.upgrade_response
        body = await first.read()
        report.line(
            f"  h2c: stream 1 answered {first.status_code} with {len(body)} bytes"
        )
        second = await conn.request("GET", "/")
        body = await second.read()
        report.line(
            f"  h2c: a second request on the same connection: "
            f"{second.status_code}, {len(body)} bytes"
        )
    elif isinstance(conn, RawStream):
        data = message.encode()
        await conn.send_all(data)
        received = b""
        while len(received) < len(data):
            chunk = await conn.receive_some()
            if not chunk:
                break
            received += chunk
        report.line(f"  raw: sent {data!r}, received {received!r}")


async def negotiate(
    url: str,
    protocols: Sequence[str],
    *,
    strategy: Strategy,
    headers: list[tuple[str, str]],
    limits: Limits,
    message: str,
    report: Reporter,
    proxy: str | bool | None = True,
    unix_socket: str | None = None,
) -> bool:
    """Upgrade ``url`` offering ``protocols``; report; True on success."""
    shown = redacted(url)  # never the URL's password
    via = f" over the Unix socket {unix_socket!r}" if unix_socket else ""
    report.line(f"offering {', '.join(protocols)} to {shown}{via} ({strategy})")
    try:
        conn: Any = await upgrade(
            url,
            list(protocols),
            strategy=strategy,
            headers=headers,
            limits=limits,
            proxy=proxy,
            unix_socket=unix_socket,
        )
    except UpgradeRefused as exc:
        report.status = Exit.REFUSED
        _report_attempts(exc.attempts, report)
        report.response(exc.response, "last response")
        if exc.body:
            report.line(f"  body: {exc.body[:200]!r}")
        report.line(f"  no protocol chosen: {exc}")
        return False
    except (UpgradeError, ValueError) as exc:
        report.line(f"  failed: {type(exc).__name__}: {exc}")
        report.status = exit_status(exc)
        return False
    async with conn:
        _report_attempts(conn.attempts, report)
        report.request(conn.handshake_request)
        report.response(conn.handshake_response, "101 received")
        report.line(f"  protocol chosen: {conn.protocol} ({type(conn).__name__})")
        await _exercise(conn, message, report)
    return True


def _report_attempts(attempts: Sequence[Attempt], report: Reporter) -> None:
    """One line per request that did not switch: declined, or redirected."""
    for attempt, following in zip(attempts, [*attempts[1:], None], strict=True):
        offered = ", ".join(attempt.offered)
        if attempt.status_code == 101:
            continue  # the switch itself: the request and 101 are shown
        if following is not None and following.url != attempt.url:
            report.line(
                f"  offer of {offered} to {attempt.url}: redirected with "
                f"{attempt.status_code} to {following.url}"
            )
        else:
            report.line(f"  offer of {offered}: declined with {attempt.status_code}")


async def demo(report: Reporter, limits: Limits, message: str) -> bool:
    """Run the library's own server and upgrade to each protocol it speaks."""
    from .testing import open_upgrade_server
    from .testing._demo import demo_protocols

    async with open_upgrade_server(demo_protocols()) as server:
        report.line(
            f"trio_upgrade {__version__}: embedded upgrade server at {server.url()}"
        )
        report.line()
        ok = True
        for offer in (["websocket"], ["h2c"], ["echo"], ["unknown-proto", "echo"]):
            ok &= await negotiate(
                server.url("/"),
                offer,
                strategy="sequential",
                headers=[],
                limits=limits,
                message=message,
                report=report,
                proxy=None,  # our own loopback server: never a proxy
            )
            report.line()
    return ok


def program_name(argv0: str | None = None) -> str:
    """The command as invoked: ``trio-upgrade``, or ``python -m trio_upgrade``."""
    name = os.path.basename(argv0 if argv0 is not None else sys.argv[0])
    if not name or name in ("__main__.py", "-c") or name.startswith("python"):
        return "python -m trio_upgrade"
    return name


def parse_args(
    argv: Sequence[str] | None, prog: str = "python -m trio_upgrade"
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"%(prog)s [-h] [options] [URL]\n       {prog} probe URL [options]"
        f"\n       {prog} connect URL -p PROTOCOL [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Negotiate an HTTP/1.1 upgrade and show the request, the 101 and the "
            "protocol chosen. Without a URL, run against the embedded loopback "
            "test server.\n\n"
            "subcommands (see '%(prog)s probe -h', '%(prog)s connect -h'):\n"
            "  probe URL                 which upgrades does this server support?\n"
            "  connect URL -p PROTOCOL   upgrade, then talk: WebSocket messages, "
            "HTTP/2\n"
            "                            requests, or raw bytes from stdin"
        ),
        epilog=f"exit statuses:\n{exit_table()}",
    )
    parser.add_argument("url", nargs="?", help="http://, https://, ws:// or wss:// URL")
    parser.add_argument(
        "-p",
        "--protocol",
        action="append",
        dest="protocols",
        metavar="TOKEN",
        help="protocol to offer, most preferred first; repeat for several "
        f"(default: {' '.join(DEFAULT_PROTOCOLS)}; for https and wss URLs, "
        f"{' '.join(DEFAULT_TLS_PROTOCOLS)})",
    )
    parser.add_argument(
        "--strategy",
        choices=["sequential", "combined"],
        default="sequential",
        help="one request per protocol in order (default), or one request offering all",
    )
    add_network_options(parser)
    parser.add_argument(
        "--message", default=DEMO_MESSAGE, help="what to send once upgraded"
    )
    parser.add_argument("--version", action="version", version=__version__)
    return parser.parse_args(argv)


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    *,
    err: TextIO | None = None,
    stdin: BinaryIO | None = None,
    prog: str | None = None,
) -> int:
    """Entry point; returns the process exit status (see ``--help``).

    ``out``, ``err`` and ``stdin`` replace the process's streams (tests);
    ``prog`` is the command's name in messages, by default as invoked.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog if prog is not None else program_name()
    if argv[:1] and argv[0] in SUBCOMMANDS:
        streams = (
            out if out is not None else sys.stdout,
            err if err is not None else sys.stderr,
            stdin if stdin is not None else sys.stdin.buffer,
        )
        return run(argv, prog=prog, console_streams=streams)
    args = parse_args(argv, prog)
    report = Reporter(out if out is not None else sys.stdout)
    limits = Limits(connect_timeout=args.timeout, handshake_timeout=args.timeout)
    if args.url is None:
        ok = trio.run(demo, report, limits, args.message)
    else:
        ok = trio.run(
            lambda: negotiate(
                args.url,
                args.protocols or default_protocols(args.url),
                strategy=args.strategy,
                headers=args.header,
                limits=limits,
                message=args.message,
                report=report,
                proxy=args.proxy,
                unix_socket=args.unix_socket,
            )
        )
    if ok:
        return Exit.OK
    return report.status if report.status != Exit.OK else Exit.PROTOCOL


if __name__ == "__main__":
    sys.exit(main())
