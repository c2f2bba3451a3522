"""The ``limits`` directive: a table of bounds built from the code itself.

::

    .. limits:: trio_upgrade.Limits

    .. limits:: trio_upgrade.WebSocket
       :fields: max_size max_queue

    .. limits:: trio_upgrade._websocket._writer
       :fields: PONG_BACKLOG

A dataclass gives every field, its default and its entry in the class
docstring's ``Attributes:`` section; a class gives the named keyword
arguments of its constructor and their ``Args:`` entries; a module gives the
named constants and their ``#:`` comments. A field, argument or constant
without its explanation is an error, so the page cannot fall behind the
code: a new limit must say why it has the default it has.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import itertools
import re
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

#: Names whose numbers are seconds.
_SECONDS = re.compile(r"timeout|interval|ttl|grace|delay|linger", re.IGNORECASE)


def section(doc: str, title: str) -> dict[str, str]:
    """The entries of a Google-style docstring section, by name, unwrapped."""
    lines = inspect.cleandoc(doc).splitlines()
    found: dict[str, str] = {}
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == title + ":")
    except StopIteration:
        return found
    head = len(lines[start]) - len(lines[start].lstrip())
    entry_indent: int | None = None
    name = ""
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= head:
            break
        if entry_indent is None:
            entry_indent = indent
        if indent == entry_indent:
            match = re.match(r"\s*\**(\w+)(?: \([^)]*\))?:\s*(.*)", line)
            if match is None:
                raise ValueError(f"unreadable {title} entry: {line.strip()!r}")
            name = match.group(1)
            found[name] = match.group(2)
        else:
            found[name] += " " + line.strip()
    return found


def show_default(name: str, value: object) -> str:
    """A default as the table shows it: sizes in KiB/MiB, times in seconds."""
    if value is None or isinstance(value, bool):
        return f"``{value}``"
    if isinstance(value, int):
        text = f"{value:,}"
        for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if value >= size and value % size == 0:
                return f"{text} ({value // size} {unit})"
        return text
    if isinstance(value, float):
        return f"{value:g} s" if _SECONDS.search(name) else f"{value:g}"
    return f"``{value!r}``"


def reference_module(target: str) -> str:
    """The module whose names an explanation's short references mean."""
    parts = target.split(".")
    public = list(itertools.takewhile(lambda part: not part.startswith("_"), parts))
    if len(public) == len(parts):
        return ".".join(parts[:-1])  # a public class: trio_upgrade.Limits
    if public == ["trio_upgrade", "testing"]:
        return "trio_upgrade.testing"  # its names are exported there
    return target


def rows_for(target: str, names: list[str] | None) -> list[tuple[str, object, str]]:
    """``(name, default, reason)`` of each limit ``target`` defines."""
    module_name, _, attr = target.rpartition(".")
    try:
        module = importlib.import_module(target)
        obj: Any = None
    except ImportError:
        module = importlib.import_module(module_name)
        obj = getattr(module, attr)
    rows: list[tuple[str, object, str]] = []
    if obj is None:  # a module: its constants and their #: comments
        comments = ModuleAnalyzer.for_module(target).find_attr_docs()
        for name in names or []:
            lines = comments.get(("", name))
            if not lines:
                raise ValueError(f"{target}.{name} has no #: comment")
            rows.append((name, getattr(module, name), " ".join(x for x in lines if x)))
        return rows
    if dataclasses.is_dataclass(obj):
        docs = section(obj.__doc__ or "", "Attributes")
        defaults = {f.name: f.default for f in dataclasses.fields(obj)}
    else:
        docs = section(obj.__doc__ or "", "Args")
        parameters = inspect.signature(obj).parameters
        defaults = {n: p.default for n, p in parameters.items() if n in (names or [])}
    for name in names or list(defaults):
        if name not in defaults:
            raise ValueError(f"{target} has no field or argument {name!r}")
        if name not in docs:
            raise ValueError(f"{target}.{name} is not explained in its docstring")
        rows.append((name, defaults[name], docs[name]))
    return rows


class LimitsDirective(SphinxDirective):
    """``.. limits:: dotted.name`` with an optional ``:fields:`` list."""

    required_arguments = 1
    option_spec = {"fields": directives.unchanged}  # noqa: RUF012 (docutils API)

    def run(self) -> list[nodes.Node]:
        target = self.arguments[0]
        names = self.options.get("fields", "").split() or None
        try:
            rows = rows_for(target, names)
        except (ValueError, ImportError, AttributeError) as exc:
            raise self.error(f"limits:: {target}: {exc}") from exc
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 22 18 60", ""]
        lines += ["   * - limit", "     - default", "     - why"]
        for name, default, reason in rows:
            lines += [
                f"   * - ``{name}``",
                f"     - {show_default(name, default)}",
                f"     - {reason}",
            ]
        container = nodes.container(classes=["limits"])
        # Cross-references in the explanations resolve as they do in the
        # docstrings' own module: the public one that exports the object,
        # or the private module of a constant (nitpick ignores those).
        context = self.env.ref_context
        saved = context.get("py:module")
        context["py:module"] = reference_module(target)
        try:
            self.state.nested_parse(StringList(lines, source=target), 0, container)
        finally:
            if saved is None:
                context.pop("py:module", None)
            else:
                context["py:module"] = saved
        return [container]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("limits", LimitsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
