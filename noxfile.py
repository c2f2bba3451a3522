"""Development sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``docs``."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


ROOT = Path(__file__).parent

#: The servers of tests/interop written in Python (hypercorn, uvicorn, ...)
#: live in the project's .venv (.ci/install-interop.sh); every session runs
#: them from there, so each matrix entry runs the interop tests as well.
INTEROP_PYTHON = ROOT / ".venv" / "bin" / "python"


def _run_suite(session: nox.Session, *, env: dict[str, str] | None = None) -> None:
    """The whole test suite, as the README's command runs it."""
    env = dict(env or {})
    if INTEROP_PYTHON.exists():
        env.setdefault("INTEROP_PYTHON", str(INTEROP_PYTHON))
    session.run(
        "python",
        "-c",
        "import sys, importlib.metadata as m; print(sys.version); "
        "print(*(f'{d} {m.version(d)}' for d in ('trio', 'h11', 'wsproto', 'h2')))",
    )
    session.run("python", "-m", "pytest", *session.posargs, env=env)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (interop tests skip when their servers are absent)."""
    session.install("-e", ".[test]")
    _run_suite(session)


@nox.session
def autobahn(session: nox.Session) -> None:
    """Autobahn Testsuite (fuzzingserver) against the WebSocket client.

    Every case, compression included (about 20 minutes on 2 cores); installs
    wstest into .venv-autobahn (Python 2.7) first. Arguments go to
    tests/autobahn/run.py: ``nox -s autobahn -- --cases '9.*'``.
    """
    session.install("-e", ".")
    session.run("bash", ".ci/install-autobahn.sh", external=True)
    session.run("python", "tests/autobahn/run.py", *session.posargs)


#: The lowest versions pyproject.toml admits: the suite must pass with them
#: as it does with the newest (``tests_lowest`` against ``tests_newest``).
LOWEST = ["trio==0.25.0", "h11==0.14.0", "wsproto==1.2.0", "h2==4.1.0", "idna==3.0"]

#: The dependencies whose private state the compat modules rely on, or whose
#: behaviour the engines are built around.
CORE = ["trio", "h11", "wsproto", "h2"]


@nox.session(python="3.10")
def tests_lowest(session: nox.Session) -> None:
    """The suite on the oldest Python with the lowest supported dependencies."""
    session.install("-e", ".[test]", *LOWEST)
    _run_suite(session)


@nox.session(python="3.12")
def tests_newest(session: nox.Session) -> None:
    """The suite with the newest trio, h11, wsproto and h2, pre-releases too.

    Within the bounds of pyproject.toml (``wsproto<2``, ``h2<5``): a
    pre-release that changes what the compat modules rely on shows up here
    before users meet it.
    """
    session.install("-e", ".[test]")
    session.install("--upgrade", "--pre", *CORE)
    _run_suite(session)


@nox.session(python="3.11")
def tests_plain(session: nox.Session) -> None:
    """The suite with every fast path switched off (TRIO_UPGRADE_NO_SPEEDUPS=1).

    Only the public APIs of wsproto and h2 are used then: the plain paths
    must pass every test the fast paths pass.
    """
    session.install("-e", ".[test]")
    _run_suite(session, env={"TRIO_UPGRADE_NO_SPEEDUPS": "1"})


#: The cancellation sweeps (tests/cancel_support.py) and the fixes they
#: found; with TRIO_UPGRADE_CANCEL_SWEEP=full they cancel at every step of
#: each operation instead of the sample the default run takes.
CANCELLATION_TESTS = [
    "tests/test_cancel_support.py",
    "tests/test_cancel_connect.py",
    "tests/test_cancel_websocket.py",
    "tests/test_http2_cancel.py",
    "tests/interop/test_cancel_interop.py",
]


@nox.session
def cancellation(session: nox.Session) -> None:
    """Cancel every operation at every one of its steps, fast paths on and off.

    About a minute; arguments go to pytest (``nox -s cancellation -- -x``).
    """
    session.install("-e", ".[test]")
    env = {"TRIO_UPGRADE_CANCEL_SWEEP": "full"}
    if INTEROP_PYTHON.exists():
        env["INTEROP_PYTHON"] = str(INTEROP_PYTHON)
    for plain in ("0", "1"):
        session.run(
            "python",
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            *CANCELLATION_TESTS,
            *session.posargs,
            env={**env, "TRIO_UPGRADE_NO_SPEEDUPS": plain},
        )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import contracts."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The layers and seams of docs/explanation/architecture.rst
    # ([tool.importlinter] in pyproject.toml).
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, and the type tests."""
    session.install("-e", ".[lint]")
    session.run("mypy", "--strict", "trio_upgrade")
    session.run("mypy", "--strict", "tests/typing", "docs/examples")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx docs with warnings as errors, nitpicky.

    ``-E`` reads every page again: a saved environment would skip unchanged
    pages, and with them their warnings. The builder is HTML, the default.
    """
    session.install("-e", ".[docs]")
    session.run("sphinx-build", "-W", "-n", "--keep-going", "-E", "docs", "docs/_build")


@nox.session
def faults(session: nox.Session) -> None:
    """Fault injection at every byte offset of both directions.

    The sweep of tests/test_faults.py and tests/interop/test_faults_interop.py
    (reset, stall, trickle, truncate, duplicate, half-close between the
    client and the in-repo server, ``websockets`` and hypercorn) with
    ``TRIO_UPGRADE_FAULTS=all`` instead of the default run's representative
    offsets; ``nox -s faults -- 5`` takes every fifth offset. Tens of
    minutes for ``all``.
    """
    session.install("-e", ".[test]")
    env = {"TRIO_UPGRADE_FAULTS": session.posargs[0] if session.posargs else "all"}
    if INTEROP_PYTHON.exists():
        env["INTEROP_PYTHON"] = str(INTEROP_PYTHON)
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "tests/test_faults.py",
        "tests/interop/test_faults_interop.py",
        env=env,
    )


@nox.session
def fuzz(session: nox.Session) -> None:
    """atheris on the handshake parser and both frame layers.

    ``nox -s fuzz -- 60`` runs each target of tests/fuzz_targets.py for 60
    seconds (default 30); a crash fails the session and leaves its input
    as ``crash-*``. The same targets run under hypothesis in the test suite.
    """
    session.install("-e", ".[test,fuzz]")
    seconds = session.posargs[0] if session.posargs else "30"
    session.run("python", "tests/fuzz_run.py", "--seconds", seconds)


@nox.session
def soak(session: nox.Session) -> None:
    """Soak and load against real servers: not part of the default run.

    1,000 WebSocket connections x 1,000 messages (Node ``ws``), 1,000
    concurrent HTTP/2 streams and 80,000 sequential requests (h2o), then a
    10-minute mixed run sampling RSS and descriptors: about 25 minutes on 2
    cores. Fails on any lost, reordered or corrupted byte, descriptors or
    tasks left behind, or RSS growing after warm-up (docs/soak.rst).
    Arguments go to ``python -m benchmarks.soak``: ``nox -s soak -- --short``
    (about 2 minutes), ``-- --minutes 3``. The figures are written to
    ``.nox/soak.json``. Needs the servers of ``.ci/install-interop.sh``.
    """
    session.install("-e", ".")
    args = list(session.posargs)
    if "--json" not in args:
        args += ["--json", str(ROOT / ".nox" / "soak.json")]
    session.run("python", "-m", "benchmarks.soak", *args)
