"""Progress of long steps: a live bar on a terminal, plain lines in a log.

Every step that can take more than a few seconds (a learner's folds, embedding or featurising
essays, a TF-IDF fit, a benchmark) reports here, so a user never waits without a sign of life.
With progress on and stderr a terminal, a rich bar shows counts, rate and time left. Otherwise
(output redirected to a file, CI, ``--no-progress``) a step writes a plain, flushed line every
``AES_PROGRESS_SECONDS`` seconds (default 10), e.g.
``svr_emb: embeddings 120/480 essays (25%), 7.9 essays/s, ETA 45 s``, and one when it ends.
Everything goes to stderr, so stdout stays clean for tables and pipes.

A step nests in the display that is running (the engine's, over a learner's folds): its bar
appears under the learner's, and its plain lines carry the learner's name.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

from aes_ensemble.io import is_main_process

INTERVAL_ENV = "AES_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 10.0

_ACTIVE: ContextVar[Display | None] = ContextVar("aes_progress_display", default=None)


def line_interval() -> float:
    """Seconds between two plain lines of a step (``AES_PROGRESS_SECONDS``; tests use 0)."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(timedelta(seconds=round(seconds)))


class _PaceColumn(ProgressColumn):
    """A step's rate and time left; the learner's time so far and current stage. The one column
    that gives way on a narrow terminal: cut short with an ellipsis, never wrapped."""

    def render(self, task: Task) -> Text:
        if not task.fields.get("rate"):
            text = f"{_clock(task.elapsed)}  {task.description}"
        elif task.speed is None:
            text = ""
        else:
            unit = task.fields["unit"]
            text = f"{task.speed:.1f} {unit}/s, ETA {_clock(task.time_remaining)}"
        return Text(text, style="progress.remaining", no_wrap=True, overflow="ellipsis")


def _live(enabled: bool) -> Progress | None:
    """A rich bar on stderr where it can be drawn (a terminal, a notebook), else None."""
    if not enabled or not is_main_process():
        return None
    console = Console(stderr=True)
    if not (console.is_terminal or console.is_jupyter):
        return None
    fixed = Column(no_wrap=True)  # only the last column shrinks when the terminal is narrow
    return Progress(
        TextColumn("[bold]{task.fields[name]}[/]", table_column=fixed),
        BarColumn(bar_width=20, table_column=fixed),
        MofNCompleteColumn(table_column=fixed),
        TextColumn("{task.fields[unit]}", table_column=fixed),
        _PaceColumn(),
        console=console,
    )


class Display:
    """What a long job shows: a learner's folds (``stage``, ``advance``, ``note``) and the steps
    inside them (``step``). ``enabled``: draw a live bar where stderr is a terminal; without it,
    or off a terminal, plain lines. A note (why a fold is refitted) shows as it is made, when
    what it says starts, and is kept in ``notes``."""

    def __init__(self, name: str, total: int | None, enabled: bool) -> None:
        self.name = name
        self.total = total
        self.enabled = enabled
        self.notes: list[str] = []
        self.done = 0
        self.started = time.perf_counter()
        self.quiet = not is_main_process()  # the extra processes of a torchrun launch
        self.progress = _live(enabled)
        self.task = None
        if self.progress is not None and total is not None:
            self.task = self.progress.add_task("", total=total, name=name, unit="folds")

    @contextmanager
    def running(self) -> Iterator[Display]:
        """Show the display for the ``with`` block; steps started inside nest in it."""
        token = _ACTIVE.set(self)
        try:
            if self.progress is None:
                yield self
            else:
                with self.progress:
                    yield self
                    if self.task is not None:
                        self.progress.update(self.task, description="done")
        finally:
            _ACTIVE.reset(token)

    def stage(self, fold: int, text: str, learner: str | None = None) -> None:
        """What fold ``fold`` is doing; ``learner`` names it where the display is shared."""
        where = f"fold {fold}" if learner is None else f"{learner} fold {fold}"
        if self.progress is None:
            self.line(f"{where}: {text}")
        elif self.task is not None:
            self.progress.update(self.task, description=f"{where}: {text}")

    def advance(self) -> None:
        self.done += 1
        if self.progress is None:
            elapsed = _duration(time.perf_counter() - self.started)
            self.line(f"{self.done}/{self.total} folds done ({elapsed})")
        elif self.task is not None:
            self.progress.advance(self.task)

    def note(self, text: str) -> None:
        self.notes.append(text)
        if self.quiet:
            return
        if self.progress is None:
            self.line(text)
        else:
            self.progress.console.print(f"[yellow]{escape(self.name)}[/]: {escape(text)}")

    def line(self, text: str) -> None:
        """One plain line on stderr, flushed at once so a log shows it as it happens."""
        if not self.quiet:
            print(f"{self.name}: {text}" if self.name else text, file=sys.stderr, flush=True)

    @contextmanager
    def step(self, label: str, total: int, unit: str = "essays") -> Iterator[Step]:
        current = Step(self, label, total, unit)
        try:
            yield current
        finally:
            current.close()


class Step:
    """One long step of ``total`` units; call ``advance`` as units are done."""

    def __init__(self, display: Display, label: str, total: int, unit: str) -> None:
        self.display = display
        self.label = label
        self.total = total
        self.unit = unit
        self.completed = 0.0
        self.started = self.last_line = time.perf_counter()
        self.printed = False
        self.task = None
        if display.progress is not None:
            self.task = display.progress.add_task(
                "", total=total, name=f"  {label}", unit=unit, rate=True
            )

    def advance(self, n: float = 1) -> None:
        # Rounded: shares of an essay (embedding windows) add up to whole essays, not 5.999.
        self.completed = min(float(self.total), round(self.completed + n, 6))
        progress = self.display.progress
        if progress is not None and self.task is not None:
            progress.update(self.task, completed=self.completed)
            return
        now = time.perf_counter()
        if now - self.last_line >= line_interval() and self.completed < self.total:
            self.display.line(self.status(now - self.started))
            self.last_line, self.printed = now, True

    def status(self, elapsed: float) -> str:
        """``embeddings 120/480 essays (25%), 7.9 essays/s, ETA 45 s``."""
        done = f"{self.label} {self.completed:.0f}/{self.total} {self.unit}"
        if self.completed <= 0 or elapsed <= 0:
            return done
        rate = self.completed / elapsed
        eta = (self.total - self.completed) / rate
        share = 100 * self.completed / self.total
        return f"{done} ({share:.0f}%), {rate:.1f} {self.unit}/s, ETA {_duration(eta)}"

    def close(self) -> None:
        progress = self.display.progress
        if progress is not None and self.task is not None:
            if self.display.task is not None:  # under a learner's bar: make room for the next
                progress.remove_task(self.task)
            return
        elapsed = time.perf_counter() - self.started
        if self.printed or elapsed >= line_interval():
            rate = self.completed / elapsed if elapsed > 0 else 0.0
            self.display.line(
                f"{self.label} {self.completed:.0f}/{self.total} {self.unit} in "
                f"{_duration(elapsed)} ({rate:.1f} {self.unit}/s)"
            )


@contextmanager
def step(label: str, total: int, *, unit: str = "essays", progress: bool = True) -> Iterator[Step]:
    """A long step of ``total`` units, shown in the display that is running (the engine's), or
    on its own; ``progress`` as ``Display``'s ``enabled`` when there is none."""
    active = _ACTIVE.get()
    if active is not None:
        with active.step(label, total, unit) as current:
            yield current
        return
    display = Display("", None, progress)
    with display.running(), display.step(label, total, unit) as current:
        yield current
