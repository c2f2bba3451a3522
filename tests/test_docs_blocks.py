"""Every code block of the docs runs: docs/**/*.rst, README.md, docstrings.

Blocks are found by reading the sources, as Sphinx and Markdown see them:

* ``.. code-block::`` (or ``code``, ``sourcecode``) and ``::`` literal
  blocks; without a language they are shown as Python, so they are Python;
* ``.. literalinclude::`` of a file in docs/examples: the whole file runs
  as a script (tests/test_docs_examples.py also checks what it returns),
  or, for a ``test_*.py`` file, as a test module next to the examples;
* fenced blocks of README.md;
* the same reStructuredText blocks in the package's docstrings, which the
  API reference shows through autodoc: every docstring of every module of
  trio_upgrade (module, class, function, method, and the string or ``#:``
  comments that document an attribute), read from the source with ``ast``
  so that each block is named by its file and line.

A block in another language says so (``.. code-block:: console``, ``text``,
a ``sh`` fence) and is not run. A block without a language in Markdown, in a
language not listed below, or that this module does not know how to run,
fails: nothing is skipped silently.

How a Python block runs is decided from its own code:

* it defines ``test_*`` functions: it is a test module, run by pytest in a
  subprocess as the testing how-to sets it up (``trio_mode = true``, the
  fixtures from the plugin that installing trio_upgrade registers); all must
  pass;
* it calls ``trio.run``: it is a script, run as ``__main__``;
* it defines ``async def main()``: it is run with ``trio.run(main)``;
* otherwise it may only bind names (a ``conftest.py``'s ``pytest_plugins``,
  objects to look at): it is executed, and the plugins it names imported.
  A function or class that nothing would run fails.

A block that talks to a server of the reader's own names it by a URL in
``SERVER_URLS``: the README's first example uses ``http://127.0.0.1:8000/``,
docstrings ``ws://localhost:8080/`` (a WebSocket server) and
``http://localhost:8080/`` (an HTTP/2 server with prior knowledge). It runs
against an embedded server instead (trio_upgrade.testing's), the URL
substituted, once per server listed for it.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import itertools
import logging
import os
import pathlib
import pkgutil
import queue
import re
import runpy
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial

import pytest
import trio
from plugin_support import PLUGIN_MODULE, child_pythonpath, plugin_args

import trio_upgrade
from trio_upgrade.testing import (
    H2CServerProtocol,
    ServerProtocol,
    WebSocketServerProtocol,
    open_upgrade_server,
)

ROOT = pathlib.Path(__file__).parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
PACKAGE = ROOT / "trio_upgrade"

PYTHON = {"python", "python3", "py", ""}
NOT_RUN = {"console", "shell", "sh", "bash", "text", "none", "http"}

#: Opens a server, yields its URL, stops it on exit.
ServerFactory = Callable[[], AbstractAsyncContextManager[str]]


def upgrade_server(
    protocols: Callable[[], Sequence[ServerProtocol | str]], scheme: str = "http"
) -> ServerFactory:
    """The embedded upgrade server, new protocol objects for each run."""

    @contextlib.asynccontextmanager
    async def serve() -> AsyncIterator[str]:
        async with open_upgrade_server(protocols()) as server:
            yield server.url(scheme=scheme)

    return serve


@contextlib.asynccontextmanager
async def http2_server() -> AsyncIterator[str]:
    """HTTP/2 with prior knowledge, no HTTP/1.1: H2CServerProtocol's routes."""
    protocol = H2CServerProtocol()
    async with trio.open_nursery() as nursery:
        serve = partial(
            trio.serve_tcp, protocol.serve_prior_knowledge, 0, host="127.0.0.1"
        )
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}/"
        nursery.cancel_scope.cancel()


#: URLs that stand for the reader's own server, and the embedded servers a
#: block naming one runs against, in turn. The README's first example offers
#: websocket, h2c and my-proto: against these three servers each case of its
#: ``match`` runs. Docstrings talk to a WebSocket server (``ws://``, the
#: embedded one echoes messages) or to an HTTP/2 server (``http://``, for
#: open_http2: prior knowledge, which the upgrade server does not speak).
SERVER_URLS: dict[str, list[ServerFactory]] = {
    "http://127.0.0.1:8000/": [
        upgrade_server(
            lambda: [WebSocketServerProtocol(), H2CServerProtocol(), "my-proto"]
        ),
        upgrade_server(lambda: [H2CServerProtocol(), "my-proto"]),
        upgrade_server(lambda: ["my-proto"]),
    ],
    "ws://localhost:8080/": [
        upgrade_server(lambda: [WebSocketServerProtocol()], scheme="ws"),
    ],
    "http://localhost:8080/": [http2_server],
}

pytestmark = pytest.mark.timeout(60)


@dataclasses.dataclass(frozen=True)
class Block:
    where: str  # "docs/tutorial.rst:45"
    language: str
    source: str = ""
    include: pathlib.Path | None = None  # a literalinclude's file
    options: tuple[tuple[str, str], ...] = ()


# -- finding blocks ----------------------------------------------------------

DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w-]+)::\s*(.*)$")
CODE_DIRECTIVES = {"code-block", "code", "sourcecode"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _directive(
    lines: list[str], start: int, indent: int
) -> tuple[dict[str, str], str, int]:
    """A directive's options and content, and the index of the next line."""
    options: dict[str, str] = {}
    i = start
    while i < len(lines) and lines[i].strip().startswith(":"):
        if _indent(lines[i]) <= indent:
            break
        name, _, value = lines[i].strip()[1:].partition(":")
        options[name] = value.strip()
        i += 1
    content = []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        content.append(lines[i])
        i += 1
    return options, textwrap.dedent("\n".join(content)).strip("\n"), i


def _literal(lines: list[str], start: int, indent: int) -> tuple[str, int]:
    """The literal block after a ``::`` line indented ``indent``."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines) or _indent(lines[i]) <= indent:
        return "", start  # no block follows
    body_indent = _indent(lines[i])
    content = []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) >= body_indent):
        content.append(lines[i])
        i += 1
    return textwrap.dedent("\n".join(content)).strip("\n"), i


#: Where the imported package is: the source tree, or site-packages when the
#: suite runs against an installed wheel (``nox -s package``).
INSTALLED = pathlib.Path(trio_upgrade.__file__).parent.parent


def shown(path: pathlib.Path) -> str:
    """A file's name in block ids: relative to the tree, or to site-packages."""
    base = ROOT if path.is_relative_to(ROOT) else INSTALLED
    return path.relative_to(base).as_posix()


def rst_blocks(path: pathlib.Path, text: str, first_line: int = 1) -> list[Block]:
    """The blocks of ``text``, whose first line is line ``first_line`` of path."""
    name = shown(path) if path.is_absolute() else str(path)
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        line = lines[i]
        where = f"{name}:{first_line + i}"
        match = DIRECTIVE.match(line)
        if match:
            indent, directive, argument = len(match[1]), match[2], match[3].strip()
            if directive in CODE_DIRECTIVES:
                options, content, i = _directive(lines, i + 1, indent)
                blocks.append(Block(where, argument.lower(), content))
                continue
            if directive == "literalinclude":
                options, _, i = _directive(lines, i + 1, indent)
                language = options.get("language", "python").lower()
                included = (path.parent / argument).resolve()
                blocks.append(
                    Block(
                        where,
                        language,
                        include=included,
                        options=tuple(sorted(options.items())),
                    )
                )
                continue
            # Other directives: their content may hold literal blocks.
            i += 1
            continue
        if line.rstrip().endswith("::") and not line.rstrip().endswith("\\::"):
            content, end = _literal(lines, i + 1, _indent(line))
            if content:
                blocks.append(Block(where, "", content))
                i = end
                continue
        i += 1
    return blocks


FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def markdown_blocks(path: pathlib.Path, text: str) -> list[Block]:
    name = path.relative_to(ROOT).as_posix()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        language = match[1].strip().lower()
        # A fence says its language; an untagged one is an error below.
        blocks.append(Block(f"{name}:{line}", language or "?", match[2]))
    return blocks


DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _string(node: ast.stmt) -> ast.Constant | None:
    if (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ):
        return node.value
    return None


def docstrings(source: str) -> Iterator[tuple[int, str]]:
    """Each docstring of a module's source: its first line, and its text.

    Docstrings of the module, of classes and functions at any depth, and of
    attributes (a string right after an assignment, as autodoc reads them).
    """
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, DOCUMENTED):
            continue
        body = node.body
        strings = [_string(body[0])] if body else []
        strings += [
            _string(after)
            for before, after in itertools.pairwise(body)
            if isinstance(before, ast.Assign | ast.AnnAssign)
        ]
        for string in strings:
            if string is not None:
                yield string.lineno, string.value


def attribute_comments(source: str) -> Iterator[tuple[int, str]]:
    """Each run of ``#:`` comment lines (autodoc's attribute docs)."""
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip().startswith("#:"):
            i += 1
            continue
        start = i
        while i < len(lines) and lines[i].strip().startswith("#:"):
            i += 1
        text = "\n".join(line.strip()[2:] for line in lines[start:i])
        yield start + 1, textwrap.dedent(text)


def docstring_blocks(path: pathlib.Path, source: str) -> list[Block]:
    blocks = []
    for line, text in docstrings(source):
        # Line for line as in the file: the first line as it is, the others
        # dedented together (inspect.cleandoc would drop blank lines).
        first, _, rest = text.partition("\n")
        blocks += rst_blocks(path, first.strip() + "\n" + textwrap.dedent(rest), line)
    for line, text in attribute_comments(source):
        blocks += rst_blocks(path, text, line)
    return blocks


def package_modules() -> list[str]:
    """trio_upgrade and all its modules, by name, and its pytest plugin.

    Not the compiled masker (``_sansio._ws_mask``, when built): it has no
    Python source, and its docstrings hold no blocks.
    """
    infos = pkgutil.walk_packages(trio_upgrade.__path__, "trio_upgrade.")
    names = sorted(info.name for info in infos)
    python = [name for name in names if module_path(name).suffix == ".py"]
    return ["trio_upgrade", *python, PLUGIN_MODULE]


def module_path(name: str) -> pathlib.Path:
    spec = importlib.util.find_spec(name)  # imports packages, not the module
    assert spec is not None and spec.origin is not None, name
    return pathlib.Path(spec.origin)


def all_blocks() -> list[Block]:
    blocks = []
    for path in sorted(DOCS.rglob("*.rst")):
        if "_build" not in path.parts:
            blocks += rst_blocks(path, path.read_text())
    readme = ROOT / "README.md"
    blocks += markdown_blocks(readme, readme.read_text())
    for name in package_modules():
        path = module_path(name)
        blocks += docstring_blocks(path, path.read_text())
    return blocks


BLOCKS = all_blocks()
RUN = [b for b in BLOCKS if b.language not in NOT_RUN]


# -- running them ------------------------------------------------------------


@contextlib.contextmanager
def server_in_thread(factory: ServerFactory) -> Iterator[str]:
    """An embedded server on loopback, in a Trio run of its own.

    Blocks that call ``trio.run`` themselves cannot share a Trio run with a
    server, so it runs in a thread; the URL is ready when this yields.
    """
    started: queue.Queue[tuple[str, trio.lowlevel.TrioToken, trio.CancelScope]] = (
        queue.Queue()
    )
    errors: list[BaseException] = []

    async def serve() -> None:
        with trio.CancelScope() as scope:
            async with factory() as url:
                token = trio.lowlevel.current_trio_token()
                started.put((url, token, scope))
                await trio.sleep_forever()

    def run() -> None:
        try:
            trio.run(serve)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="docs-server", daemon=True)
    thread.start()
    try:
        url, token, scope = started.get(timeout=10)
    except queue.Empty:
        thread.join(1)
        raise RuntimeError(f"the embedded server did not start: {errors}") from None
    try:
        yield url
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(10)
        assert not thread.is_alive(), "the embedded server did not stop"
        assert not errors, errors


def _calls_trio_run(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "run"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "trio"
        for node in ast.walk(tree)
    )


def _test_functions(tree: ast.Module) -> list[str]:
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test")
    ]


def run_as_tests(source: str, tests: list[str], where: str, tmp: pathlib.Path) -> None:
    (tmp / "test_block.py").write_text(source)
    run_pytest(tmp, tests, where)


def run_pytest(tmp: pathlib.Path, tests: list[str], where: str) -> None:
    """pytest on the test modules in ``tmp``, as the testing how-to sets it up.

    ``trio_mode = true`` and nothing else: the fixtures come from the plugin
    that installing trio_upgrade registers.
    """
    (tmp / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    env = {**os.environ, "PYTHONPATH": child_pythonpath()}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, *plugin_args(), "-W", "error"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    report = f"{where}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    assert f"{len(tests)} passed" in result.stdout, report


def run_example_tests(path: pathlib.Path, where: str, tmp: pathlib.Path) -> None:
    """An included test module of docs/examples, with the examples it tests."""
    for example in EXAMPLES.glob("*.py"):
        shutil.copy(example, tmp)
    tests = _test_functions(ast.parse(path.read_text(), where))
    assert tests, f"{where}: {path.name} has no tests"
    for other in tmp.glob("test_*.py"):
        if other.name != path.name:
            other.unlink()  # only the included one runs
    run_pytest(tmp, tests, where)


def run_python(source: str, where: str, tmp: pathlib.Path) -> None:
    tree = ast.parse(source, where)
    tests = _test_functions(tree)
    if tests:
        run_as_tests(source, tests, where, tmp)
        return
    script = tmp / "block.py"
    script.write_text(source)
    if _calls_trio_run(tree):
        runpy.run_path(str(script), run_name="__main__")
        return
    namespace = runpy.run_path(str(script), run_name="docs_block")
    main = namespace.get("main")
    if main is not None:
        trio.run(main)
        return
    definitions = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    assert not definitions, (
        f"{where} defines {definitions} but nothing runs them: call trio.run, "
        "define async def main(), or write test_* functions"
    )
    for plugin in namespace.get("pytest_plugins", []):
        importlib.import_module(plugin)


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Undo what a block does to logging (``basicConfig``, levels).

    A block run in this process that turns the ``trio_upgrade`` loggers on
    (the debugging how-to does) would otherwise leave every later test's
    connections logged, and so wrapped.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, logger in logging.Logger.manager.loggerDict.items():
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))


def run_block(block: Block, tmp: pathlib.Path) -> None:
    with logging_kept():
        _run_block(block, tmp)


def _run_block(block: Block, tmp: pathlib.Path) -> None:
    assert block.language in PYTHON, (
        f"{block.where}: a {block.language!r} block; name its language "
        f"(Python, or one of {sorted(NOT_RUN)} which are not run)"
    )
    if block.include is not None:
        assert block.include.parent == EXAMPLES, (
            f"{block.where}: include examples from docs/examples, where they "
            "are run and type-checked"
        )
        options = dict(block.options)
        if "pyobject" in options:
            tree = ast.parse(block.include.read_text())
            names = {getattr(node, "name", None) for node in tree.body}
            assert options["pyobject"] in names, block.where
        if block.include.name.startswith("test_"):
            run_example_tests(block.include, block.where, tmp)
            return
        runpy.run_path(str(block.include), run_name="__main__")
        return
    servers = [
        (url, factories)
        for url, factories in SERVER_URLS.items()
        if url in block.source
    ]
    if not servers:
        run_python(block.source, block.where, tmp)
        return
    for url, factories in servers:
        for index, factory in enumerate(factories):
            with server_in_thread(factory) as server_url:
                source = block.source.replace(url, server_url)
                run_python(source, f"{block.where} (server {index})", tmp)


@pytest.mark.parametrize("block", RUN, ids=[b.where for b in RUN])
def test_block_runs(block: Block, tmp_path: pathlib.Path) -> None:
    run_block(block, tmp_path)


# -- the finder itself ---------------------------------------------------------


SAMPLE = """\
Title
=====

A paragraph::

    print("literal")

.. code-block:: python
   :caption: a caption

   print("code-block")

.. code-block:: console

   $ pip install .

.. note::

   Nested, in a directive::

       print("nested")

.. literalinclude:: examples/quickstart.py
   :language: python
   :pyobject: talk

Expanded form: ::

    print("expanded")

.. toctree::
   :maxdepth: 2

   tutorial

Not a block\\::
"""


def test_finder_sees_every_form() -> None:
    blocks = rst_blocks(DOCS / "sample.rst", SAMPLE)
    found = [(b.language, b.source or b.include) for b in blocks]
    assert found == [
        ("", 'print("literal")'),
        ("python", 'print("code-block")'),
        ("console", "$ pip install ."),
        ("", 'print("nested")'),
        ("python", EXAMPLES / "quickstart.py"),
        ("", 'print("expanded")'),
    ]
    assert dict(blocks[4].options) == {"language": "python", "pyobject": "talk"}


def test_finder_reads_markdown_fences() -> None:
    text = "x\n\n```python\nprint(1)\n```\n\n```\nuntagged\n```\n"
    blocks = markdown_blocks(ROOT / "README.md", text)
    assert [(b.language, b.source) for b in blocks] == [
        ("python", "print(1)\n"),
        ("?", "untagged\n"),
    ]


def test_docs_have_blocks_to_run() -> None:
    # Guards the finder against finding nothing: the tutorial alone has three
    # included examples, and the README one Python block.
    where = {b.where.split(":")[0] for b in RUN}
    assert {"docs/tutorial.rst", "README.md"} <= where
    assert len(RUN) >= 8


DOCSTRING_SAMPLE = '''\
"""A module.

Shown::

    print("module")
"""

#: A constant; a block in a comment::
#:
#:     print("comment")
LIMIT = 1


class Thing:
    """A class.

    .. code-block:: text

        not Python
    """

    async def method(self) -> None:
        """A fragment, as docstrings had them before they were run.

        ::

            async with trio_upgrade.open_upgrade(url, ["websocket"]) as ws:
                await ws.send("hi")
        """

    size = 2
    """An attribute.

    Example::

        Script([Close()])
    """
'''


def test_finder_reads_docstrings() -> None:
    blocks = docstring_blocks(PACKAGE / "sample.py", DOCSTRING_SAMPLE)
    found = [(b.where, b.language, b.source.splitlines()[0]) for b in blocks]
    # Named by the line of their ``::`` or directive in the file.
    assert sorted(found, key=lambda f: int(f[0].rpartition(":")[2])) == [
        ("trio_upgrade/sample.py:3", "", 'print("module")'),
        ("trio_upgrade/sample.py:8", "", 'print("comment")'),
        ("trio_upgrade/sample.py:17", "text", "not Python"),
        (
            "trio_upgrade/sample.py:25",
            "",
            'async with trio_upgrade.open_upgrade(url, ["websocket"]) as ws:',
        ),
        ("trio_upgrade/sample.py:34", "", "Script([Close()])"),
    ]


def test_fragments_fail(tmp_path: pathlib.Path) -> None:
    # What docstrings showed before they were run: a block that is not a
    # whole program fails, it is not skipped.
    blocks = docstring_blocks(PACKAGE / "sample.py", DOCSTRING_SAMPLE)
    (fragment,) = (b for b in blocks if "open_upgrade" in b.source)
    (expression,) = (b for b in blocks if "Script" in b.source)
    with pytest.raises(SyntaxError):
        run_block(fragment, tmp_path)
    with pytest.raises(NameError):
        run_block(expression, tmp_path)


def test_docstring_blocks_run() -> None:
    # The reference's examples are among the blocks run, found where autodoc
    # takes them from.
    upgrade = [b for b in RUN if b.where.startswith("trio_upgrade/_upgrade.py:")]
    assert any("open_upgrade(" in b.source for b in upgrade)
    assert any(b.where.startswith("trio_upgrade/testing/") for b in RUN)
    tree = [b for b in BLOCKS if b.where.startswith("trio_upgrade/_sansio/_errors.py:")]
    assert [b.language for b in tree] == ["text"]


def _documented(module: object) -> Iterator[object]:
    """What autodoc can show of a module: it, its classes and functions, and
    their members, when defined in trio_upgrade. (Data is documented by
    ``#:`` comments: docs/conf.py never shows the docstring of its type.)"""
    yield module
    name = getattr(module, "__name__", "")
    todo = [
        value
        for value in vars(module).values()
        if (inspect.isclass(value) or inspect.isroutine(value))
        and getattr(value, "__module__", None) == name
    ]
    while todo:
        value = todo.pop()
        yield value
        if inspect.isclass(value):
            for member in vars(value).values():
                member = getattr(member, "__func__", member)  # class/staticmethod
                if isinstance(member, property):
                    yield member.fget
                elif (inspect.isclass(member) or inspect.isroutine(member)) and (
                    # None for a builtin's method (an IntEnum's int.__new__)
                    getattr(member, "__module__", "") or ""
                ).startswith("trio_upgrade"):
                    todo.append(member)


def test_every_docstring_is_read() -> None:
    # The source scan misses no docstring with a block that autodoc could
    # show (one set at run time, say): compared with what inspect sees.
    read = set()
    for name in package_modules():
        for _, text in docstrings(module_path(name).read_text()):
            read.add(inspect.cleandoc(text))
    seen = 0
    for name in package_modules():
        if name == "trio_upgrade.__main__":
            continue  # runs the command line when imported
        for obj in _documented(importlib.import_module(name)):
            # Its own docstring (autodoc_inherit_docstrings is off).
            doc = inspect.cleandoc(getattr(obj, "__doc__", None) or "")
            if "::" in doc:
                seen += 1
                assert doc in read, f"{obj!r}: a docstring not read from source"
    assert seen >= 8
