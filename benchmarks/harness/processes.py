"""Worker processes: every measurement runs in a fresh Python process.

The parent starts ``python -m <suite> --worker SPEC`` (SPEC is JSON), pinned
to its CPUs from the first instruction, and reads back the one line the
worker prints, :data:`RESULT_PREFIX` then JSON. A worker that outlives its
budget is killed by its PID. Heaps, garbage-collector state and imports
never carry over from one measurement to the next, and a worker imports only
the client library it measures.

Which trio_upgrade a worker imports: it starts in an empty directory, with
``PYTHONPATH`` set to the caller's ``PYTHONPATH`` followed by the root of
this checkout. A library named in the caller's ``PYTHONPATH`` (an older
checkout, for a before/after comparison) therefore comes first, and the
benchmarks themselves always come from this checkout: the worker checks
that and fails loudly otherwise.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from . import cpus as _cpus

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

RESULT_PREFIX = "BENCH-RESULT "
#: The checkout whose ``benchmarks`` package is running.
ROOT = Path(__file__).resolve().parents[2]


class BenchFailure(Exception):
    """A client answered wrongly, or stopped making progress."""


class Workers:
    """Starts the worker processes of one suite (``python -m module``).

    A context manager: it owns the empty directory the workers start in.
    """

    def __init__(self, module: str) -> None:
        self.module = module
        self._cwd: str | None = None

    def __enter__(self) -> Workers:
        self._cwd = tempfile.mkdtemp(prefix="bench-worker-")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._cwd is not None:
            shutil.rmtree(self._cwd, ignore_errors=True)
            self._cwd = None

    def environment(self) -> dict[str, str]:
        """The worker's environment: ``PYTHONPATH`` first, then this checkout.

        Relative entries are made absolute: the worker starts elsewhere.
        """
        env = dict(os.environ)
        given = [
            os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p
        ]
        env["PYTHONPATH"] = os.pathsep.join([*given, str(ROOT)])
        return env

    def run(
        self, spec: dict[str, Any], *, cpus: set[int] | None, timeout: float
    ) -> dict[str, Any]:
        """Run one worker; its result, or ``{"ok": False, "error": ...}``."""
        if self._cwd is None:
            raise RuntimeError("Workers is used outside its with block")
        spec = {**spec, "root": str(ROOT)}
        argv = [sys.executable, "-m", self.module, "--worker", json.dumps(spec)]
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self._cwd,
            env=self.environment(),
            preexec_fn=_cpus.pinner(cpus),  # pinned from its first instruction
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child, by its PID
            proc.communicate()
            return {
                "ok": False,
                "error": f"hung: the worker did not end in {timeout:.0f} s",
            }
        for line in reversed(out.splitlines()):
            if line.startswith(RESULT_PREFIX):
                result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
                return result
        tail = (err or out).strip().splitlines()[-3:] or ["(no output)"]
        return {
            "ok": False,
            "error": f"worker exited with {proc.returncode}: " + " | ".join(tail),
        }

    def library(self) -> dict[str, str] | None:
        """The trio_upgrade that the workers import (path, version, commit)."""
        found = self.run({"job": "library"}, cpus=None, timeout=60.0)
        if not found.get("ok"):
            print(f"WARNING: trio_upgrade does not import: {found.get('error')}")
        library: dict[str, str] | None = found.get("library")
        return library


def serve(spec_text: str, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """The worker side: run ``handler(spec)`` and print its result line.

    Any exception becomes ``{"ok": False, "error", "traceback"}``. When the
    handler imported trio_upgrade, the result also says which one
    (``library``: path, version, commit, fingerprint of its sources).
    """
    from . import environment

    spec: dict[str, Any] = json.loads(spec_text)
    here = str(ROOT)
    if spec.get("root", here) != here:
        result: dict[str, Any] = {
            "ok": False,
            "error": f"the worker imported the benchmarks of {here}, not of "
            f"{spec['root']}: PYTHONPATH names a checkout with its own "
            "benchmarks package; name a folder holding only a link to its "
            "trio_upgrade (benchmarks/README.md)",
        }
    else:
        try:
            if spec.get("job") == "library":  # which trio_upgrade, nothing else
                import trio_upgrade  # noqa: F401

                result = {"ok": True}
            else:
                result = handler(spec)
        except BaseException as exc:  # report everything, including hangs
            if isinstance(exc, KeyboardInterrupt):
                raise
            result = {"ok": False, "error": describe(exc), "traceback": details(exc)}
        if "trio_upgrade" in sys.modules:
            result["library"] = environment.library()
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found += _leaves(inner)
        return found
    return [exc]


def describe(exc: BaseException) -> str:
    """One line: the first leaf of an exception (group), and how many failed."""
    leaves = _leaves(exc)
    first = leaves[0]
    if type(first).__name__ == "TooSlowError":
        text = "hung: trio.fail_after expired (TooSlowError)"
    else:
        lines = str(first).strip().splitlines()
        text = f"{type(first).__qualname__}: {lines[0] if lines else ''}".rstrip(": ")
    if len(leaves) > 1:
        kinds = {f"{type(e).__module__}.{type(e).__qualname__}: {e}" for e in leaves}
        text += f" (x{len(leaves)} tasks, {len(kinds)} distinct)"
    return text


def details(exc: BaseException) -> str:
    """The traceback of the first leaf of an exception (group)."""
    return "".join(traceback.format_exception(_leaves(exc)[0]))


def raise_fd_limit(wanted: int) -> None:
    """Raise this process's open-file limit to ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
