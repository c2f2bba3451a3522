"""Development sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``docs``,
``package``, ``callgrind``."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import tarfile
import zipfile
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
#: anyio is a test dependency (the plugin's anyio case): its newest releases
#: call Trio APIs that trio 0.25 lacks, so it is held at its lowest too.
LOWEST = [
    "trio==0.25.0",
    "h11==0.14.0",
    "wsproto==1.2.0",
    "h2==4.1.0",
    "idna==3.0",
    "anyio==4.0.0",
]

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
    session.run("mypy", "--strict", "trio_upgrade", "_trio_upgrade_pytest_plugin.py")
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


#: The distributions on the paths ``nox -s callgrind`` counts: pinned to the
#: versions its baseline was taken with (benchmarks/callgrind/run.py).
CALLGRIND_PINNED = [*CORE, "hpack", "hyperframe"]
CALLGRIND_BASELINE = ROOT / "benchmarks" / "callgrind" / "baseline.json"


@nox.session
def callgrind(session: nox.Session) -> None:
    """Instruction counts per operation against the committed baseline.

    Not part of the default run. ``python -m benchmarks.callgrind`` under
    ``valgrind --tool=callgrind`` (3-5 minutes on 2 busy cores): the
    WebSocket handshake, sends and receives of 16 B, 64 KiB and 1 MiB, the
    h2c handshake and HTTP/2 GETs, the client alone. Fails when any costs
    more than 5 % over ``benchmarks/callgrind/baseline.json``. trio, h11,
    wsproto, h2, hpack and hyperframe are installed at the baseline's
    versions. ``nox -s callgrind -- --update`` rewrites the baseline (same
    versions); ``-- --update --new-versions`` takes the newest ones first.
    Other arguments go to the command (``-- --only ws_send_16 --keep DIR``).
    """
    args = list(session.posargs)
    pins: list[str] = []
    if "--new-versions" in args:
        args.remove("--new-versions")
    elif CALLGRIND_BASELINE.exists():
        versions = json.loads(CALLGRIND_BASELINE.read_text()).get("versions", {})
        pins = [f"{d}=={versions[d]}" for d in CALLGRIND_PINNED if versions.get(d)]
    if pins:
        session.install("-e", ".", *pins)
    else:  # the newest versions pyproject.toml admits
        session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".")
    session.run("python", "-m", "benchmarks.callgrind", *args)


#: The pytest plugin's module: top-level, outside the package (see it).
PLUGIN_MODULE = "_trio_upgrade_pytest_plugin"

#: What the sdist must hold besides the package: what builds the wheel, and
#: what runs the test suite against an installed copy (MANIFEST.in).
SDIST_NEEDS = [
    "pyproject.toml",
    "MANIFEST.in",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    f"{PLUGIN_MODULE}.py",
    "trio_upgrade/py.typed",
    "trio_upgrade/_version.py",
    "tests/conftest.py",
    "tests/interop/node/package.json",
    "benchmarks/servers.py",
    "docs/conf.py",
    "docs/examples/test_chat_app.py",
]


def _version() -> str:
    """``__version__`` of trio_upgrade/_version.py, its one place."""
    tree = ast.parse((ROOT / "trio_upgrade" / "_version.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == (
            "__version__"
        ):
            return str(ast.literal_eval(node.value))
    raise RuntimeError("trio_upgrade/_version.py sets no __version__")


def _copy_sources(destination: Path) -> None:
    """The files git tracks or would (not ignored), as a clean build sees them.

    Building in a copy leaves no ``*.egg-info`` in the checkout, where
    importlib.metadata would find it beside the installed metadata.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # not deleted in the working tree
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def _check_wheel(session: nox.Session, wheel: Path, version: str) -> None:
    """The wheel carries the typing marker, the plugin and its entry point."""
    info = f"trio_upgrade-{version}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        record = archive.read(f"{info}/RECORD").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = archive.read(f"{info}/METADATA").decode()
    recorded = {line.split(",")[0] for line in record.splitlines()}
    for name in ("trio_upgrade/py.typed", f"{PLUGIN_MODULE}.py"):
        if name not in names or name not in recorded:
            session.error(f"{wheel.name} lacks {name} (or its RECORD line)")
    if f"[pytest11]\ntrio_upgrade = {PLUGIN_MODULE}\n" not in entry_points:
        session.error(f"{wheel.name}: no pytest11 entry point:\n{entry_points}")
    if f"\nVersion: {version}\n" not in metadata:
        session.error(f"{wheel.name}: METADATA does not say Version: {version}")
    stray = sorted(n for n in names if n.split("/")[0] in ("tests", "docs"))
    if stray:
        session.error(f"{wheel.name} holds files of the source tree: {stray[:5]}")
    session.log(f"{wheel.name}: {len(names)} files, py.typed, pytest11 entry point")


def _check_sdist(session: nox.Session, sdist: Path, version: str) -> list[str]:
    """The sdist holds SDIST_NEEDS and no build output; its file names."""
    top = f"trio_upgrade-{version}/"
    with tarfile.open(sdist) as archive:
        names = [m.name.removeprefix(top) for m in archive.getmembers() if m.isfile()]
    missing = [name for name in SDIST_NEEDS if name not in names]
    if missing:
        session.error(f"{sdist.name} lacks {missing}")
    junk = [n for n in names if "__pycache__" in n or n.startswith("docs/_build")]
    if junk:
        session.error(f"{sdist.name} holds build output: {junk[:5]}")
    tops = sorted({n.split("/")[0] for n in names})
    session.log(f"{sdist.name}: {len(names)} files: {', '.join(tops)}")
    return names


@nox.session(reuse_venv=False)
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel, check them, test the installed wheel.

    ``python -m build`` builds both (the wheel from the sdist) in a copy of
    the checkout; ``twine check --strict`` reads their metadata; the wheel
    must carry ``py.typed`` and the pytest plugin with its entry point, the
    sdist what the tests need. Then the wheel is installed into this fresh
    virtualenv and the whole test suite runs from the unpacked sdist with
    the package removed from it: pytest imports the installed copy (the
    suite asserts it, TRIO_UPGRADE_TEST_INSTALLED) and gets the fixtures
    from the installed entry point.
    """
    session.install("build>=1.2", "twine>=6")
    version = _version()
    work = Path(session.create_tmp()) / "package"
    shutil.rmtree(work, ignore_errors=True)
    source, dist, unpacked = work / "source", work / "dist", work / "unpacked"
    _copy_sources(source)
    session.run("python", "-m", "build", "--outdir", str(dist), str(source))
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    session.run("twine", "check", "--strict", str(sdist), str(wheel))
    _check_wheel(session, wheel, version)
    _check_sdist(session, sdist, version)

    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, filter="data")
    tests_root = unpacked / f"trio_upgrade-{version}"
    shutil.rmtree(tests_root / "trio_upgrade")
    (tests_root / f"{PLUGIN_MODULE}.py").unlink()
    # The Node server of tests/interop, if .ci/install-interop.sh installed it.
    node_modules = ROOT / "tests" / "interop" / "node" / "node_modules"
    if node_modules.is_dir():
        (tests_root / "tests" / "interop" / "node" / "node_modules").symlink_to(
            node_modules
        )

    session.install(f"{wheel}[test]")
    session.chdir(tests_root)
    session.run(
        "python",
        "-c",
        "import importlib.metadata as m, trio_upgrade; "
        "print(trio_upgrade.__file__); "
        f"assert trio_upgrade.__version__ == m.version('trio_upgrade') == {version!r}",
    )
    _run_suite(session, env={"TRIO_UPGRADE_TEST_INSTALLED": "1"})
