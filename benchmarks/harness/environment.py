"""The record of what was measured, and where.

Python, the machine (kernel, CPU model, CPU count, load), the versions of
the distributions and tools involved, the commit of these benchmarks, and
the trio_upgrade that the workers imported: its path, version, commit and a
fingerprint of its sources (a hash of its ``*.py`` files), which tells two
checkouts, or uncommitted work, apart.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from .processes import ROOT


def source_fingerprint(package_dir: Path) -> str:
    """A short hash of a package's Python sources: which code was measured."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(str(path.relative_to(package_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def git_state(directory: Path, *paths: str) -> str:
    """``abc1234`` or ``abc1234+dirty`` (changes under ``paths``); ``?``."""
    try:
        head = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        status = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--", *paths],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    if head.returncode:
        return "?"
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def library() -> dict[str, str]:
    """The trio_upgrade this process imported (worker side)."""
    import trio_upgrade

    package = Path(trio_upgrade.__file__).resolve().parent
    version = getattr(trio_upgrade, "__version__", None)
    if not isinstance(version, str):
        try:
            version = importlib.metadata.version("trio_upgrade")
        except importlib.metadata.PackageNotFoundError:
            version = "?"
    return {
        "path": str(package),
        "version": version,
        "git": git_state(package.parent, package.name),
        "fingerprint": source_fingerprint(package),
    }


def describe_library(found: dict[str, str]) -> str:
    return (
        f"{found['version']} at {found['path']} (git {found['git']}, "
        f"sources {found['fingerprint']})"
    )


def tool_version(argv: list[str]) -> str:
    """The first line a tool prints for its version, or ``?``."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def dist_versions(dists: list[str]) -> dict[str, str]:
    """The installed version of each distribution (missing ones left out)."""
    found = {}
    for dist in dists:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    return found


def machine() -> dict[str, Any]:
    """Python, the kernel, the CPU model and count, the load average."""
    found: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                found["cpu"] = line.split(":", 1)[1].strip()
                break
    return found


def record(
    dists: list[str],
    tools: dict[str, str],
    library_found: dict[str, str] | None,
) -> dict[str, Any]:
    """Everything about this run's software and machine, for the JSON."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "argv": sys.argv,
        "benchmarks_git": git_state(ROOT, "benchmarks"),
        "machine": machine(),
        "versions": dist_versions(dists),
        "tools": tools,
        "trio_upgrade": library_found,
    }


def summary(found: dict[str, Any]) -> str:
    """The record in a few lines, for the top of the output."""
    box = found["machine"]
    lines = [
        f"Python {box['python']} ({box['implementation']}), kernel "
        f"{box['kernel']}, {box['cpus']} CPUs ({box.get('cpu', '?')}), load "
        + " ".join(f"{x:.2f}" for x in box["load_average"]),
        "versions: "
        + ", ".join(
            f"{k} {v}" for k, v in {**found["versions"], **found["tools"]}.items()
        ),
        f"benchmarks at git {found['benchmarks_git']}",
    ]
    if found["trio_upgrade"] is not None:
        lines.append("trio_upgrade " + describe_library(found["trio_upgrade"]))
    return "\n".join(lines)
