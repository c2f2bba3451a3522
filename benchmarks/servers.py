"""Launchers for the real third-party servers of the interop tests and benchmarks.

Plain Python (subprocess, socket, tempfile): no Trio, so fixtures of any kind
can use it. Each launcher starts one server on 127.0.0.1 at a free port,
waits (bounded) until it accepts TCP connections and returns a
:class:`RunningServer`, which is also a context manager::

    with websockets_server() as srv:
        connect(srv.host, srv.port, srv.url("/greet", scheme="ws"))

A launcher raises :class:`ServerUnavailable` when the server is not installed
(tests turn that into ``pytest.skip``) and :class:`ServerStartError` when it
is installed but would not come up (a real failure, with the server's log).
``.ci/install-interop.sh`` installs everything used here. The tests import
this module through ``tests/interop/servers.py`` (which adds the pytest
fixture helper ``started``), the benchmarks directly; the servers' own files
(``apps/``, ``node/``) stay in ``tests/interop``.

Each server runs in a session of its own (``start_new_session=True``), so
``stop()`` signals the whole process group, whose id is the leader's PID:
that ends the helpers that h2o, nginx and hypercorn fork, and nothing else.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import importlib.util
import os
import random
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
START_TIMEOUT = 15.0
INTEROP_DIR = Path(__file__).resolve().parent.parent / "tests" / "interop"
APPS_DIR = INTEROP_DIR / "apps"
NODE_DIR = INTEROP_DIR / "node"
BIG_FILE_NAME = "big.bin"
BIG_FILE_SIZE = 10 * 1024 * 1024
#: A 64 KiB body (the HTTP/2 throughput figure, issue 13).
MEDIUM_FILE_NAME = "64k.bin"
MEDIUM_FILE_SIZE = 64 * 1024
INDEX_HTML = b"<!doctype html><title>trio_upgrade interop</title><p>ok</p>\n"
# The interpreter that runs the Python servers: the one running the tests,
# unless INTEROP_PYTHON names another venv's python.
PYTHON = os.environ.get("INTEROP_PYTHON", sys.executable)

# Keep in sync with apps/asgi_app.py (the smoke tests compare the two).
_PATTERN = random.Random(20240601).randbytes(65521)


def payload(n: int, offset: int = 0) -> bytes:
    """Bytes ``offset`` to ``offset + n`` of the pattern every server serves."""
    out = bytearray()
    pos = offset % len(_PATTERN)
    while len(out) < n:
        take = min(n - len(out), len(_PATTERN) - pos)
        out += _PATTERN[pos : pos + take]
        pos = 0
    return bytes(out)


class ServerUnavailable(Exception):
    """The server's binary or package is not installed: skip, don't fail."""


class ServerStartError(RuntimeError):
    """The server is installed but did not start; the message has its log."""


class _PortInUse(Exception):
    """The port we picked was taken before the server bound it: pick again."""


# ----------------------------------------------------------------- process ---

_RUNNING: set[RunningServer] = set()


class RunningServer:
    """A started server; ``stop()`` (or leaving ``with``) ends its processes."""

    def __init__(
        self,
        name: str,
        port: int,
        process: subprocess.Popen[bytes],
        workdir: Path,
        logs: Sequence[Path],
    ) -> None:
        self.name = name
        self.host = HOST
        self.port = port
        self.process = process
        self.workdir = workdir
        self.logs = list(logs)
        self._stopped = False
        _RUNNING.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def pgid(self) -> int:
        # start_new_session=True made the leader the group's first member.
        return self.process.pid

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def log_text(self, limit: int = 4000) -> str:
        return _read_logs(self.logs, limit)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the group, wait, SIGKILL what is left; then remove files."""
        if self._stopped:
            return
        self._stopped = True
        _RUNNING.discard(self)
        try:
            _end_group(self.process, timeout)
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningServer {self.name} pid={self.pid} {self.host}:{self.port}>"


def group_pids(pgid: int) -> list[int] | None:
    """Live (non-zombie) members of a process group; None without /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    pids = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces or ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process went away while we looked
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(stat.parent.name))
    return pids


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is left in the group.

    Zombies do not count: a helper orphaned by the leader's exit (h2o's perl
    crash handler) is reparented to PID 1, which on some machines reaps it
    only after a second or more; it is dead and holds no port meanwhile.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal still exists
        return True
    pids = group_pids(pgid)
    return True if pids is None else bool(pids)


def _group_listens(pgid: int, port: int) -> bool | None:
    """Whether our process group owns the socket listening on ``port``.

    A bare connect() would also succeed against a stranger that took the
    port between free_port() and the server's bind(): then our server fails
    with EADDRINUSE, and we must notice and retry rather than hand the test
    someone else's port. None when /proc cannot tell (not Linux).
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            return None
        for row in rows:
            fields = row.split()
            # fields: sl, local "HEXIP:HEXPORT", remote, state (0A = LISTEN), ...
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in group_pids(pgid) or []:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _end_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    pgid = process.pid
    _signal_group(pgid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_group(pgid, signal.SIGKILL)
        process.wait(timeout)
    # The leader is gone; forked helpers (h2o, nginx workers) may linger.
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            _signal_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.02)


@atexit.register
def _stop_leftovers() -> None:
    # A test that crashed before stop() must not leave servers behind.
    for server in list(_RUNNING):
        server.stop(timeout=2.0)


def _read_logs(paths: Sequence[Path], limit: int) -> str:
    parts = []
    for path in paths:
        try:
            data = path.read_bytes()[-limit:]
        except OSError:
            continue
        parts.append(f"--- {path.name} ---\n{data.decode('utf-8', 'replace')}")
    return "\n".join(parts) or "(no log output)"


def free_port() -> int:
    """A port that was free a moment ago (launchers retry if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _accepts(port: int, http_probe: bool = False) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            if not http_probe:
                return True
            sock.sendall(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


# How each server words a failed bind(); tinyproxy does not say why.
_IN_USE_MARKERS = (
    "address already in use",
    "eaddrinuse",
    "errno 98",
    "could not create listening sockets",
)


def _spawn(
    argv: Sequence[str],
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    stdout_pipe: bool = False,
    pass_fds: Sequence[int] = (),
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / f"{Path(argv[0]).name}.out"
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log_file,
            stderr=log_file,
            env=env,
            cwd=cwd or workdir,
            pass_fds=tuple(pass_fds),
            start_new_session=True,
        )
    return process, log


def _fail(
    name: str, process: subprocess.Popen[bytes], logs: Sequence[Path], why: str
) -> ServerStartError:
    _end_group(process, 2.0)
    if process.stdout is not None:
        process.stdout.close()
    return ServerStartError(f"{name}: {why}\n{_read_logs(logs, 4000)}")


def _wait_for_port(
    name: str,
    process: subprocess.Popen[bytes],
    port: int,
    logs: Sequence[Path],
    http_probe: bool = False,
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = _read_logs(logs, 4000)
            if any(marker in text.lower() for marker in _IN_USE_MARKERS):
                _end_group(process, 2.0)
                raise _PortInUse(text)
            raise _fail(name, process, logs, f"exited with {process.returncode}")
        owned = _group_listens(process.pid, port)
        if owned is not False and _accepts(port, http_probe):
            return
        time.sleep(0.05)
    raise _fail(
        name, process, logs, f"no TCP listener on port {port} after {START_TIMEOUT}s"
    )


def _read_port_line(
    name: str, process: subprocess.Popen[bytes], logs: Sequence[Path]
) -> int:
    # The server picked its own port (bound to 0) and prints it on stdout.
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(process.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _fail(name, process, logs, "did not print its port in time")
            if not sel.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 64)
            if not chunk:
                process.wait(2.0)
                raise _fail(name, process, logs, f"exited with {process.returncode}")
            line += chunk
    try:
        return int(line.strip())
    except ValueError:
        raise _fail(name, process, logs, f"printed {line!r}, not a port") from None


def _launch_on_free_port(
    name: str, start: Callable[[int, Path], tuple[subprocess.Popen[bytes], list[Path]]]
) -> RunningServer:
    """Pick a port, start the server, retry a few times if the port was taken."""
    last_log = ""
    for _attempt in range(5):
        workdir = Path(tempfile.mkdtemp(prefix=f"interop-{name}-"))
        port = free_port()
        try:
            process, logs = start(port, workdir)
            _wait_for_port(name, process, port, logs)
        except _PortInUse as exc:
            last_log = str(exc)
            shutil.rmtree(workdir, ignore_errors=True)
            continue
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return RunningServer(name, port, process, workdir, logs)
    raise ServerStartError(f"{name}: every port we picked was taken\n{last_log}")


def _require_binary(name: str, *candidates: str) -> str:
    for candidate in candidates:
        found = shutil.which(
            candidate, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
        )
        if found:
            return found
    raise ServerUnavailable(f"{name} is not installed (run .ci/install-interop.sh)")


def _require_modules(*modules: str) -> None:
    if sys.executable == PYTHON:
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
    else:
        missing = [
            m
            for m in modules
            if subprocess.run(
                [PYTHON, "-c", f"import {m}"], capture_output=True
            ).returncode
        ]
    if missing:
        names = ", ".join(missing)
        raise ServerUnavailable(
            f"{names} not importable by {PYTHON} (run .ci/install-interop.sh)"
        )


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(APPS_DIR), env.get("PYTHONPATH")])
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _make_docroot(workdir: Path) -> Path:
    docroot = workdir / "htdocs"
    docroot.mkdir()
    (docroot / "index.html").write_bytes(INDEX_HTML)
    (docroot / BIG_FILE_NAME).write_bytes(payload(BIG_FILE_SIZE))
    (docroot / MEDIUM_FILE_NAME).write_bytes(payload(MEDIUM_FILE_SIZE))
    return docroot


# ------------------------------------------------------- Python & Node ------


def websockets_server() -> RunningServer:
    """The ``websockets`` library's asyncio server (apps/websockets_echo.py).

    WebSocket only: echo on any path, ``/close?code=&reason=``, ``/greet``
    (its "hello" shares a TCP segment with the 101); permessage-deflate
    offered; messages up to 16 MiB. Plain HTTP gets 426.
    """
    _require_modules("websockets")
    workdir = Path(tempfile.mkdtemp(prefix="interop-websockets-"))
    argv = [PYTHON, str(APPS_DIR / "websockets_echo.py")]
    process, log = _spawn(argv, workdir, env=_python_env(), stdout_pipe=True)
    try:
        port = _read_port_line("websockets", process, [log])
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return RunningServer("websockets", port, process, workdir, [log])


def node_ws_server(deflate: bool = False) -> RunningServer:
    """Node's ``ws`` WebSocketServer (node/echo_server.js).

    Same paths as :func:`websockets_server`; maxPayload 64 MiB;
    permessage-deflate only when ``deflate`` is true (ws's default is off).
    Plain HTTP gets 426.
    """
    node = _require_binary("node", "node")
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        raise ServerUnavailable(
            "npm package ws is not installed (run .ci/install-interop.sh)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="interop-node-"))
    argv = [node, str(NODE_DIR / "echo_server.js"), *(["--deflate"] if deflate else [])]
    process, log = _spawn(argv, workdir, stdout_pipe=True, cwd=NODE_DIR)
    try:
        port = _read_port_line("node-ws", process, [log])
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return RunningServer("node-ws", port, process, workdir, [log])


# uvicorn's --ws choices. 0.54 calls "websockets" (its legacy-API protocol)
# deprecated, in favour of "websockets-sansio"; both still work.
UVICORN_WS = ("websockets", "websockets-sansio", "wsproto")


def uvicorn_server(ws: str = "websockets") -> RunningServer:
    """uvicorn serving apps/asgi_app.py, with ``--ws`` set to ``ws``.

    HTTP: ``GET /`` -> "ok", ``GET /bytes/N``, ``POST /echo`` (with
    ``x-body-length``), ``GET /headers`` (JSON). WebSocket: echo, ``/close``,
    ``/greet``; 16 MiB messages; permessage-deflate negotiated by all three
    ``ws`` implementations. No h2c (``Upgrade: h2c`` is ignored -> 200).
    """
    if ws not in UVICORN_WS:
        raise ValueError(f"ws must be one of {UVICORN_WS}, not {ws!r}")
    _require_modules("uvicorn", "wsproto" if ws == "wsproto" else "websockets")

    def start(port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], list[Path]]:
        argv = [
            PYTHON, "-m", "uvicorn", "asgi_app:app",
            "--host", HOST, "--port", str(port),
            "--ws", ws, "--ws-max-size", str(16 * 1024 * 1024),
            "--ws-per-message-deflate", "true",
            "--timeout-graceful-shutdown", "1",
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        process, log = _spawn(argv, workdir, env=_python_env())
        return process, [log]

    return _launch_on_free_port(f"uvicorn-{ws}", start)


def hypercorn_server() -> RunningServer:
    """hypercorn serving apps/asgi_app.py (same paths as uvicorn).

    Also serves the h2c upgrade on cleartext (``Upgrade: h2c`` without a
    request body: hypercorn answers a body-carrying h2c offer in HTTP/1.1)
    and announces SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (RFC 8441). The
    listening socket is bound here to port 0 and handed over as
    ``fd://N``, so there is no port race.
    """
    _require_modules("hypercorn")
    workdir = Path(tempfile.mkdtemp(prefix="interop-hypercorn-"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(128)
    port = int(sock.getsockname()[1])
    process, log = _spawn_hypercorn(workdir, sock)
    try:
        # The socket already listens (we bound it), so a TCP connect proves
        # nothing: wait for a real HTTP answer instead.
        _wait_for_port("hypercorn", process, port, [log], http_probe=True)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return RunningServer("hypercorn", port, process, workdir, [log])


def _spawn_hypercorn(
    workdir: Path, sock: socket.socket
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start hypercorn on the listening ``sock`` (``fd://``); close ours."""
    config = workdir / "hypercorn.toml"
    config.write_text(
        f'bind = ["fd://{sock.fileno()}"]\n'
        "workers = 0\n"  # serve in-process: no spawn()ed worker to track
        f"websocket_max_message_size = {16 * 1024 * 1024}\n"
        "graceful_timeout = 1.0\n"
        'loglevel = "WARNING"\n'
    )
    argv = [PYTHON, "-m", "hypercorn", "--config", str(config), "asgi_app:app"]
    try:
        return _spawn(argv, workdir, env=_python_env(), pass_fds=[sock.fileno()])
    finally:
        sock.close()  # the child holds its own copy


#: Where :func:`hypercorn_unix_server` listens, in the server's workdir.
HYPERCORN_SOCKET = "hypercorn.sock"


def hypercorn_unix_server(path: str | None = None) -> RunningServer:
    """hypercorn as :func:`hypercorn_server`, on a Unix socket instead of TCP.

    The socket is ``path``, by default ``server.workdir / HYPERCORN_SOCKET``
    (bound here and handed over as ``fd://N``, as for TCP); ``port`` is 0.
    ``stop()`` removes the workdir, so the default socket file goes with
    it; a socket file at ``path`` stays, as a crashed daemon leaves it.
    """
    _require_modules("hypercorn")
    workdir = Path(tempfile.mkdtemp(prefix="interop-hypercorn-unix-"))
    path = path if path is not None else str(workdir / HYPERCORN_SOCKET)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(128)
    process, log = _spawn_hypercorn(workdir, sock)
    deadline = time.monotonic() + START_TIMEOUT
    # The socket already listens: wait for an HTTP answer on it.
    while not _accepts_unix(path):
        if process.poll() is not None or time.monotonic() > deadline:
            error = _fail("hypercorn-unix", process, [log], f"no HTTP answer on {path}")
            shutil.rmtree(workdir, ignore_errors=True)
            raise error
        time.sleep(0.05)
    return RunningServer("hypercorn-unix", 0, process, workdir, [log])


def _accepts_unix(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(path)
            sock.sendall(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


# ------------------------------------------------------------ Debian daemons -


def lighttpd_server(backend: tuple[str, int] | None = None) -> RunningServer:
    """lighttpd 1.4 with the h2c upgrade enabled (feature flags) on cleartext.

    Serves ``/index.html`` (also ``/``) and ``/big.bin`` (10 MiB of
    ``payload()``) from a temp docroot, and ``POST /echo`` (any body size up
    to 64 MiB) through mod_cgi and a /bin/sh script that returns the body
    with ``x-body-length``: lighttpd has no upload handler of its own, so
    the CGI stands in. With ``backend=(host, port)``, ``/ws`` and ``/ws/...``
    are reverse-proxied there by mod_proxy with upgrades enabled; the prefix
    is stripped (``/ws/greet`` reaches the backend as ``/greet``).
    """
    binary = _require_binary("lighttpd", "lighttpd")

    def start(port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], list[Path]]:
        docroot = _make_docroot(workdir)
        (workdir / "uploads").mkdir()
        cgi = workdir / "echo.sh"
        cgi.write_text(
            "# CGI: answer with the request body, which lighttpd has buffered\n"
            'printf "Status: 200\\r\\nContent-Type: application/octet-stream\\r\\n"\n'
            'printf "X-Body-Length: %s\\r\\n\\r\\n" "${CONTENT_LENGTH:-0}"\n'
            "exec cat\n"
        )
        error_log = workdir / "error.log"
        conf = [
            'server.modules = ("mod_alias", "mod_cgi", "mod_proxy")',
            f'server.document-root = "{docroot}"',
            f'server.bind = "{HOST}"',
            f"server.port = {port}",
            f'server.errorlog = "{error_log}"',
            f'server.upload-dirs = ("{workdir / "uploads"}")',
            "server.max-request-size = 65536",  # KiB: 64 MiB uploads
            'index-file.names = ("index.html")',
            'mimetype.assign = (".html" => "text/html",'
            '                   "" => "application/octet-stream")',
            # h2proto allows HTTP/2 at all; h2c allows "Upgrade: h2c" on cleartext.
            'server.feature-flags = ("server.h2proto" => "enable",'
            '                        "server.h2c" => "enable")',
            f'alias.url = ("/echo" => "{cgi}")',
            '$HTTP["url"] == "/echo" { cgi.assign = ("" => "/bin/sh") }',
        ]
        if backend is not None:
            conf += [
                '$HTTP["url"] =~ "^/ws(/|$)" {',
                f'  proxy.server = ("" => (("host" => "{backend[0]}",'
                f'                          "port" => {backend[1]})))',
                '  proxy.header = ("upgrade" => "enable",',
                '                  "map-urlpath" => ("/ws/" => "/", "/ws" => "/"))',
                "}",
            ]
        config = workdir / "lighttpd.conf"
        config.write_text("\n".join(conf) + "\n")
        # -D: stay in the foreground, so the PID we hold is the server's.
        process, out = _spawn([binary, "-D", "-f", str(config)], workdir)
        return process, [out, error_log]

    return _launch_on_free_port("lighttpd", start)


_H2O_ECHO = """\
Proc.new do |env|
  body = env["rack.input"] ? env["rack.input"].read : ""
  [200, {"content-type" => "application/octet-stream",
         "x-body-length" => body.bytesize.to_s}, [body]]
end
"""


def h2o_server(backend: tuple[str, int] | None = None) -> RunningServer:
    """h2o 2.2 with a cleartext listener (which serves the h2c upgrade).

    Serves ``/index.html`` (also ``/``) and ``/big.bin`` like lighttpd, and
    ``POST /echo`` through an mruby handler that returns the body with
    ``x-body-length``. With ``backend``, ``/ws`` is reverse-proxied there
    with ``proxy.websocket: ON`` (h2o strips the ``/ws`` prefix). h2o forks
    helpers: ``stop()`` ends the whole process group.
    """
    binary = _require_binary("h2o", "h2o")

    def start(port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], list[Path]]:
        docroot = _make_docroot(workdir)
        error_log = workdir / "error.log"
        echo = workdir / "echo.rb"
        echo.write_text(_H2O_ECHO)
        lines = [
            f"listen:\n  host: {HOST}\n  port: {port}",
            f'error-log: "{error_log}"',
            f'pid-file: "{workdir / "h2o.pid"}"',
            "num-threads: 2",
            "limit-request-body: 67108864",
        ]
        if os.geteuid() == 0:
            # As root, h2o would switch to "nobody", who cannot read our
            # 0700 temp dir.
            lines.append("user: root")
        lines += ["hosts:", '  "default":', "    paths:"]
        if backend is not None:
            lines += [
                '      "/ws":',
                f"        proxy.reverse.url: http://{backend[0]}:{backend[1]}/",
                "        proxy.websocket: ON",
                "        proxy.websocket.timeout: 300000",
            ]
        lines += [
            '      "/echo":',
            f"        mruby.handler-file: {echo}",
            '      "/":',
            f"        file.dir: {docroot}",
        ]
        config = workdir / "h2o.conf"
        config.write_text("\n".join(lines) + "\n")
        process, out = _spawn([binary, "-c", str(config)], workdir)
        return process, [out, error_log]

    return _launch_on_free_port("h2o", start)


def nginx_proxy(
    backend: tuple[str, int], returns: Sequence[tuple[str, int, str]] = ()
) -> RunningServer:
    """nginx reverse-proxying everything to ``backend`` with upgrades passed on.

    Runs in the foreground (``daemon off``) with its prefix, pid file, logs
    and temp paths in a temp dir; /etc/nginx is not read. Request and
    response bodies are streamed, not buffered; bodies up to 64 MiB.
    ``returns``: ``(path, status, location)`` that nginx answers itself
    (``location = path { return status location; }``), such as redirects.
    """
    binary = _require_binary("nginx", "nginx")

    def start(port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], list[Path]]:
        error_log = workdir / "error.log"
        temp = {
            n: workdir / n for n in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        }
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach workdir
        config = workdir / "nginx.conf"
        config.write_text(
            f"{user}daemon off;\nworker_processes 1;\n"
            f'pid "{workdir / "nginx.pid"}";\nerror_log "{error_log}" info;\n'
            "events { worker_connections 256; }\n"
            "http {\n"
            "  access_log off;\n"
            f'  client_body_temp_path "{temp["client_body"]}";\n'
            f'  proxy_temp_path "{temp["proxy"]}";\n'
            f'  fastcgi_temp_path "{temp["fastcgi"]}";\n'
            f'  uwsgi_temp_path "{temp["uwsgi"]}";\n'
            f'  scgi_temp_path "{temp["scgi"]}";\n'
            "  client_max_body_size 64m;\n"
            # Only ask the backend to upgrade when the client asked to.
            "  map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n"
            "  server {\n"
            f"    listen {HOST}:{port};\n"
            + "".join(
                f"    location = {path} {{ return {status} {location}; }}\n"
                for path, status, location in returns
            )
            + "    location / {\n"
            f"      proxy_pass http://{backend[0]}:{backend[1]};\n"
            "      proxy_http_version 1.1;\n"
            "      proxy_set_header Upgrade $http_upgrade;\n"
            "      proxy_set_header Connection $connection_upgrade;\n"
            "      proxy_set_header Host $host;\n"
            "      proxy_buffering off;\n"
            "      proxy_request_buffering off;\n"
            "      proxy_read_timeout 300s;\n"
            "    }\n  }\n}\n"
        )
        # -e: the startup error log, which otherwise goes to /var/log/nginx.
        argv = [binary, "-p", str(workdir), "-c", str(config), "-e", str(error_log)]
        process, out = _spawn(argv, workdir)
        return process, [out, error_log]

    return _launch_on_free_port("nginx", start)


def nginx_tls(
    cert_chain: Path,
    key: Path,
    *,
    http2: bool = True,
    backend: tuple[str, int] | None = None,
) -> RunningServer:
    """nginx serving HTTPS, with HTTP/2 selected by ALPN when ``http2``.

    ``cert_chain`` and ``key`` are PEM files (a trustme certificate for
    ``localhost``). With ``http2``, ALPN offers ``h2`` and ``http/1.1``
    (the server's preference: h2); without, ``http/1.1`` only. Serves
    ``/index.html`` (also ``/``) and ``/big.bin`` like lighttpd; with
    ``backend``, ``/ws`` is reverse-proxied there over HTTP/1.1 with
    upgrades passed on (nginx does not proxy WebSocket over HTTP/2 streams).
    Runs in the foreground like :func:`nginx_proxy`.
    """
    binary = _require_binary("nginx", "nginx")

    def start(port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], list[Path]]:
        docroot = _make_docroot(workdir)
        error_log = workdir / "error.log"
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach workdir
        temps = "".join(
            f'  {name}_temp_path "{workdir / name}";\n'
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        ws = ""
        if backend is not None:
            ws = (
                "    location /ws {\n"
                f"      proxy_pass http://{backend[0]}:{backend[1]}/;\n"
                "      proxy_http_version 1.1;\n"
                "      proxy_set_header Upgrade $http_upgrade;\n"
                '      proxy_set_header Connection "upgrade";\n'
                "      proxy_read_timeout 300s;\n"
                "    }\n"
            )
        config = workdir / "nginx.conf"
        config.write_text(
            f"{user}daemon off;\nworker_processes 1;\n"
            f'pid "{workdir / "nginx.pid"}";\nerror_log "{error_log}" info;\n'
            "events { worker_connections 256; }\n"
            "http {\n  access_log off;\n"
            f"{temps}"
            "  server {\n"
            # nginx 1.22 (Debian 12) spells HTTP/2 on the listen line.
            f"    listen {HOST}:{port} ssl{' http2' if http2 else ''};\n"
            f'    ssl_certificate "{cert_chain}";\n'
            f'    ssl_certificate_key "{key}";\n'
            f'    root "{docroot}";\n'
            f"{ws}"
            "  }\n}\n"
        )
        argv = [binary, "-p", str(workdir), "-c", str(config), "-e", str(error_log)]
        process, out = _spawn(argv, workdir)
        return process, [out, error_log]

    return _launch_on_free_port("nginx-tls" if http2 else "nginx-tls-http1", start)


def nghttpd_server() -> RunningServer:
    """nghttpd without TLS: HTTP/2 with prior knowledge only (a negative case).

    It writes its SETTINGS frame as soon as a connection opens and does not
    speak HTTP/1.1 at all. Docroot as for lighttpd (``/index.html``,
    ``/big.bin``).
    """
    binary = _require_binary("nghttpd", "nghttpd")

    def start(port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], list[Path]]:
        docroot = _make_docroot(workdir)
        argv = [
            binary,
            "--no-tls",
            f"--address={HOST}",
            f"--htdocs={docroot}",
            str(port),
        ]
        process, out = _spawn(argv, workdir)
        return process, [out]

    return _launch_on_free_port("nghttpd", start)


def tinyproxy_server() -> RunningServer:
    """tinyproxy as a forward proxy for clients on 127.0.0.1, in the foreground.

    CONNECT is allowed to any port (no ``ConnectPort`` line means all ports),
    so tests can tunnel to any loopback server; plain ``GET http://...`` is
    forwarded too.
    """
    binary = _require_binary("tinyproxy", "tinyproxy")

    def start(port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], list[Path]]:
        log = workdir / "tinyproxy.log"
        lines = [
            f"Port {port}",
            f"Listen {HOST}",
            f"Allow {HOST}",
            "Timeout 600",
            "MaxClients 64",
            f'LogFile "{log}"',
            "LogLevel Info",
            f'PidFile "{workdir / "tinyproxy.pid"}"',
        ]
        if os.geteuid() == 0:
            lines += ["User root", "Group root"]  # else it drops to nobody
        config = workdir / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n")
        # -d: do not daemonize, so the PID we hold is the server's.
        process, out = _spawn([binary, "-d", "-c", str(config)], workdir)
        return process, [out, log]

    return _launch_on_free_port("tinyproxy", start)


def dante_server() -> RunningServer:
    """Dante (``danted``, Debian's dante-server) as a SOCKS 4/5 proxy.

    No authentication (its ``username`` method checks system accounts,
    which tests should not create); clients from 127.0.0.0/8 may CONNECT to
    loopback addresses only (a name, with SOCKS5's remote resolution, is
    resolved by Dante before its rules are matched). In the foreground, with
    one process of each kind (``-N 1``): the PID we hold is the mother's,
    and stopping its group ends the children too. Dante does not implement
    SOCKS4a (seen: it dials 0.0.0.1, the marker of a 4a request, literally).
    """
    binary = _require_binary("dante-server", "danted", "sockd")

    def start(port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], list[Path]]:
        log = workdir / "danted.log"
        lines = [
            f"logoutput: {log}",
            f"internal: {HOST} port = {port}",
            f"external: {HOST}",
            "socksmethod: none",
            "clientmethod: none",
        ]
        if os.geteuid() == 0:
            # Else it drops to "nobody", which may not read the workdir.
            lines += ["user.privileged: root", "user.unprivileged: root"]
        lines += [
            # One keyword per line: "command: connect log: ..." would read
            # "log" as a command.
            "client pass {\n from: 127.0.0.0/8 to: 0.0.0.0/0\n log: error\n}",
            "socks pass {\n from: 127.0.0.0/8 to: 127.0.0.0/8\n command: connect"
            "\n log: error connect\n}",
            "socks block {\n from: 0.0.0.0/0 to: 0.0.0.0/0\n log: error connect\n}",
        ]
        config = workdir / "danted.conf"
        config.write_text("\n".join(lines) + "\n")
        argv = [binary, "-f", str(config), "-N", "1", "-p", str(workdir / "d.pid")]
        process, out = _spawn(argv, workdir)
        return process, [out, log]

    return _launch_on_free_port("danted", start)


def pid_exists(pid: int) -> bool:
    """Whether a process with this PID exists (for tests of ``stop()``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def group_exists(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in this process group."""
    return _group_alive(pgid)
