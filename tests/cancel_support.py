"""Cancel an operation at each of its checkpoints in turn, and check what is left.

:func:`sweep` runs an operation again and again, cancelling it just before
the N-th step of the task under test (a step is what Trio runs between two
schedule points: every checkpoint the operation passes through starts one),
for N = 1, 2, ... until a run completes without being cancelled. After each
run a check of the caller's runs, then the sweep itself checks that no
socket and no task outlived the run.

By default the sweep is *representative*: the first steps one by one (the
connect, the handshake and the first frames are there), then an even
spread over the rest, then the end. ``TRIO_UPGRADE_CANCEL_SWEEP=full`` (what
``nox -s cancellation`` sets) cancels at every single step.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import trio
import trio.testing

__all__ = [
    "CancelAtStep",
    "Outcome",
    "exhaustive",
    "living_tasks",
    "open_sockets",
    "sweep",
]

#: How many runs a representative sweep makes at most, besides the first steps.
SAMPLES = 10
#: Steps that a representative sweep always covers one by one, from the start.
FIRST_STEPS = 6
#: A sweep that never completes uncancelled is a bug, not a long operation.
MAX_STEPS = 20_000


def exhaustive() -> bool:
    """Whether every step is swept (``TRIO_UPGRADE_CANCEL_SWEEP=full``)."""
    return os.environ.get("TRIO_UPGRADE_CANCEL_SWEEP", "") == "full"


class CancelAtStep(trio.abc.Instrument):
    """Cancel ``scope`` just before ``task`` runs its ``step``-th step.

    ``step=None`` never cancels: the run only counts the task's steps.
    """

    def __init__(
        self, task: trio.lowlevel.Task, step: int | None, scope: trio.CancelScope
    ) -> None:
        self.task = task
        self.step = step
        self.scope = scope
        self.count = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.count += 1
            if self.count == self.step:
                self.scope.cancel()


def open_sockets() -> set[str]:
    """The sockets this process has open, by inode (Linux; none elsewhere)."""
    if not os.path.isdir("/proc/self/fd"):
        return set()
    sockets = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir itself used, now closed
            continue
        if link.startswith("socket:"):
            sockets.add(link)
    return sockets


def living_tasks() -> set[trio.lowlevel.Task]:
    """Every task of this run, walked down from the root task."""
    tasks: set[trio.lowlevel.Task] = set()
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None or task in tasks:
            continue
        tasks.add(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return tasks


@dataclass
class Outcome:
    """One run of the operation: where it was cancelled and whether it was."""

    #: The step before which the run was cancelled: 0 before the
    #: operation began, ``None`` never.
    step: int | None
    #: Whether the cancellation reached the operation (it was cut short).
    cancelled: bool
    #: How many steps the task under test ran.
    steps: int


def _steps(total: int) -> Iterator[int]:
    """The steps to cancel at, for an operation measured at ``total`` steps.

    Exhaustive: 0, 1, 2... without end (the sweep stops at the first run
    that completes). Representative: 0 and the first :data:`FIRST_STEPS`, then
    :data:`SAMPLES` spread evenly up to ``total``, then on past it one by
    one until a run completes.
    """
    if exhaustive():
        yield from range(MAX_STEPS)
        return
    chosen = set(range(min(FIRST_STEPS, total) + 1))
    if total > FIRST_STEPS:
        span = total - FIRST_STEPS
        chosen.update(FIRST_STEPS + span * i // SAMPLES for i in range(1, SAMPLES + 1))
    yield from sorted(chosen)
    yield from range(max(chosen) + 1, MAX_STEPS)


async def sweep(
    operation: Callable[[], Awaitable[object]],
    check: Callable[[Outcome], Awaitable[None]],
    *,
    prepare: Callable[[], Awaitable[None]] | None = None,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> list[Outcome]:
    """Cancel ``operation()`` at its steps in turn; ``check`` each outcome.

    ``operation`` runs in the calling task, inside a cancel scope that an
    instrument cancels right before the task's N-th step (N = 0: the scope
    is cancelled before the operation is called, so its first checkpoint
    raises); ``prepare()``, if
    given, runs before each run, outside the scope (to reconnect what the
    run before closed, or to have the server send what the operation will
    read). After each run:
    ``check(outcome)`` (the caller's assertions: the connection usable or
    cleanly closed, what the server saw), then ``settle()`` if given (wait
    until the server has finished with what the run closed), then the
    sweep's own: every socket opened and every task started during the run
    is gone (those that were there before may have ended: the caller checks
    that a closed connection was meant to close).

    Returns every outcome, the last one the uncancelled run.
    """
    task = trio.lowlevel.current_task()
    outcomes: list[Outcome] = []

    async def run(step: int | None) -> Outcome:
        with trio.fail_after(10):
            await trio.testing.wait_all_tasks_blocked()
            if prepare is not None:
                # What it starts (a task of another user of the connection)
                # runs alongside the operation.
                await prepare()
        sockets = open_sockets()
        tasks = living_tasks()
        with trio.CancelScope() as scope:
            if step == 0:
                scope.cancel()
            instrument = CancelAtStep(task, step, scope)
            trio.lowlevel.add_instrument(instrument)
            try:
                await operation()
            finally:
                trio.lowlevel.remove_instrument(instrument)
        outcome = Outcome(step, scope.cancelled_caught, instrument.count)
        outcomes.append(outcome)
        with trio.fail_after(10):
            await check(outcome)
            if settle is not None:
                await settle()
            await trio.testing.wait_all_tasks_blocked()
        left = living_tasks() - tasks
        assert not left, f"{outcome}: tasks left running: {left}"
        opened = open_sockets() - sockets
        assert not opened, f"{outcome}: sockets left open: {opened}"
        return outcome

    measured = await run(None)
    assert not measured.cancelled
    for step in _steps(measured.steps):
        if not (await run(step)).cancelled:
            break
    else:  # pragma: no cover - a bug in the operation or the sweep
        raise AssertionError(f"never completed within {MAX_STEPS} steps")
    cancelled = [o for o in outcomes if o.cancelled]
    assert cancelled, "no run was cancelled: the sweep tested nothing"
    return outcomes
