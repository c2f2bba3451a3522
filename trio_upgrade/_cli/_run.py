"""The command line of ``probe`` and ``connect``, and what each run gets."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import BinaryIO, TextIO

import trio

from .._groups import lone_errors_unwrapped
from .._sansio._limits import Limits
from ._connect import connect
from ._console import Console, Input
from ._exits import Exit, exit_status, exit_table
from ._probe import probe
from ._settings import Settings, ssl_factory

__all__ = ["SUBCOMMANDS", "add_common_options", "add_network_options", "parser", "run"]

SUBCOMMANDS = ("probe", "connect")


def header_argument(text: str) -> tuple[str, str]:
    """``-H 'Name: value'`` as a pair."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def proxy_argument(text: str) -> str | None:
    """``--proxy URL``, or ``none`` for no proxy."""
    return None if text.lower() == "none" else text


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def add_network_options(parser: argparse.ArgumentParser) -> None:
    """``-H``, ``--proxy``, ``--unix-socket`` and ``--timeout``: how to reach
    the server, for the subcommands and the plain ``PROG [URL]`` run alike."""
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        type=header_argument,
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header field; repeat for several",
    )
    parser.add_argument(
        "--proxy",
        type=proxy_argument,
        default=True,
        metavar="URL",
        help="proxy to connect through (http://, https://, socks5://...), or "
        "'none' to connect directly (default: from the environment: "
        "http_proxy, https_proxy, no_proxy...)",
    )
    parser.add_argument(
        "--unix-socket",
        metavar="PATH",
        help="connect to this Unix domain socket instead of the URL's host "
        "(the URL still gives Host and the target), as curl's option does",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="limit for connecting, for the handshake, and for each HTTP/2 "
        "response (default: 10)",
    )


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The options every subcommand takes."""
    parser.add_argument("url", help="http://, https://, ws:// or wss:// URL")
    add_network_options(parser)
    parser.add_argument(
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="WebSocket subprotocol to offer (Sec-WebSocket-Protocol); repeat "
        "for several, most preferred first",
    )
    parser.add_argument(
        "--origin", metavar="ORIGIN", help="WebSocket Origin header field"
    )
    parser.add_argument(
        "-k",
        "--insecure",
        action="store_true",
        help="TLS: accept any certificate and host name (for test servers)",
    )
    parser.add_argument(
        "--cacert",
        metavar="FILE",
        help="TLS: trust the CA certificates of this PEM file instead of the system's",
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show every request and response head, and a line per message "
        "sent (>) or received (<) on stderr",
    )
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="show data and errors only"
    )


def parser(prog: str) -> argparse.ArgumentParser:
    """The parser of ``PROG probe ...`` and ``PROG connect ...``."""
    epilog = f"exit statuses:\n{exit_table()}"
    top = argparse.ArgumentParser(
        prog=prog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog,
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    probe = commands.add_parser(
        "probe",
        help="which upgrades does this server support?",
        description="Offer each protocol alone, then all of them in one request "
        "(and HTTP/2 by ALPN for https), and show what the server answered to "
        "each: a table, or JSON with --json.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog,
    )
    add_common_options(probe)
    probe.add_argument(
        "-p",
        "--protocol",
        action="append",
        dest="protocols",
        metavar="TOKEN",
        help="a protocol to probe; repeat for several (default: websocket and "
        "h2c; for https and wss URLs, websocket and h2 by ALPN)",
    )
    probe.add_argument(
        "--json", action="store_true", help="print JSON (one object per offer)"
    )
    connect = commands.add_parser(
        "connect",
        help="upgrade and use the connection interactively",
        description="Upgrade to PROTOCOL and use it. websocket: each line of "
        "stdin is sent as a message and every message received is printed "
        "(commands: /ping, /close [CODE [REASON]]; // sends a line starting "
        "with /; EOF closes with 1000). h2c, h2: print the answer to the URL, "
        "then GET each path (or same-origin URL) read from stdin. Any other "
        "token: stdin and stdout are piped to the stream, as netcat does "
        "(EOF on stdin half-closes).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog,
    )
    add_common_options(connect)
    connect.add_argument(
        "-p",
        "--protocol",
        required=True,
        metavar="PROTOCOL",
        help="websocket, h2c, h2 (ALPN, https only), or any other token (raw)",
    )
    connect.add_argument(
        "--binary",
        action="store_true",
        help="WebSocket: send stdin lines as binary messages",
    )
    connect.add_argument(
        "--count",
        type=_count,
        metavar="N",
        help="WebSocket: close (1000) and exit after N messages received, "
        "even when stdin ended before (without it, stdin's end closes at once)",
    )
    return top


def run(
    argv: Sequence[str],
    *,
    prog: str,
    console_streams: tuple[TextIO, TextIO, BinaryIO],
) -> int:
    """Run ``probe`` or ``connect``; the process exit status."""
    args = parser(prog).parse_args(argv)
    out, err, stdin = console_streams
    console = Console(out, err, verbose=args.verbose, quiet=args.quiet)
    try:
        factory = ssl_factory(args)
    except (OSError, ValueError) as exc:
        console.error(f"{prog}: error: --cacert {args.cacert}: {exc}")
        return Exit.USAGE
    settings = Settings(
        args,
        console,
        Input(stdin),
        Limits(connect_timeout=args.timeout, handshake_timeout=args.timeout),
        factory,
    )
    command = probe if args.command == "probe" else connect
    try:
        # The sessions' nurseries wrap what their tasks raise in groups: a
        # lone error (a reset raw stream, Ctrl-C) comes out as itself.
        with lone_errors_unwrapped():
            return int(trio.run(command, settings))
    except KeyboardInterrupt:
        console.error("interrupted")
        return Exit.INTERRUPTED
    except Exception as exc:
        status = exit_status(exc)  # re-raises what it does not know
        console.error(f"error: {type(exc).__name__}: {exc}")
        return status
    finally:
        settings.stdin.close()
