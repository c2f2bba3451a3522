"""Development sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``docs``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (interop tests skip when their servers are absent)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


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
#: as it does with the newest (``tests_lowest`` against ``tests``).
LOWEST = ["trio==0.25.0", "h11==0.14.0", "wsproto==1.2.0", "h2==4.1.0"]


@nox.session(python="3.10")
def tests_lowest(session: nox.Session) -> None:
    """The suite on the oldest Python with the lowest supported dependencies."""
    session.install("-e", ".[test]", *LOWEST)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


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
