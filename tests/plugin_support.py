"""Running pytest in a subprocess with trio_upgrade's plugin, as users do.

The child imports the same trio_upgrade as this process (the source tree,
or the installed wheel under ``nox -s package``), and gets the plugin the
way an application does: from the ``pytest11`` entry point of the installed
metadata. Only where that metadata lacks it (an editable install made from
another checkout, or not redone since the entry point was added) is the
plugin named with ``-p``, as tests/conftest.py does for this suite.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib

import _trio_upgrade_pytest_plugin
import trio_upgrade

ROOT = pathlib.Path(__file__).parent.parent

PLUGIN_MODULE = "_trio_upgrade_pytest_plugin"


def entry_point() -> importlib.metadata.EntryPoint | None:
    """trio_upgrade's pytest11 entry point in the installed metadata."""
    for ep in importlib.metadata.entry_points(group="pytest11"):
        if ep.name == "trio_upgrade":
            return ep
    return None


def metadata_elsewhere() -> str | None:
    """Where the installed metadata's editable source is, if not here."""
    try:
        text = importlib.metadata.distribution("trio_upgrade").read_text(
            "direct_url.json"
        )
    except importlib.metadata.PackageNotFoundError:
        return "nowhere: trio_upgrade is not installed"
    if not text:
        return None  # a wheel: its own metadata
    url = json.loads(text)
    if not url.get("dir_info", {}).get("editable"):
        return None
    source = pathlib.Path(url["url"].removeprefix("file://"))
    return None if source.resolve() == ROOT.resolve() else str(source)


def plugin_args() -> list[str]:
    """What a pytest command line needs to have the plugin loaded."""
    return [] if entry_point() is not None else ["-p", PLUGIN_MODULE]


def child_pythonpath() -> str:
    """PYTHONPATH that makes a child import what this process imported."""
    dirs = {
        str(pathlib.Path(trio_upgrade.__file__).parent.parent),
        str(pathlib.Path(_trio_upgrade_pytest_plugin.__file__).parent),
    }
    old = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*sorted(dirs), *([old] if old else [])])
