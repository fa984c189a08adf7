"""Progress reporting that the library can call and the CLI can show.

The library never prints; it reports to whatever reporter is installed (none by default).
The CLI installs a rich progress bar. A module-level reporter rather than a parameter, so
that Prefect tasks running in worker threads report to the same bar.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Reporter(Protocol):
    #: whether :meth:`read_bytes` is worth calling (the reader counts a window's bytes only then)
    counts_bytes: bool

    def start(self, description: str, total: float | None = None) -> Any: ...
    def update(self, task: Any, **kw: Any) -> None: ...
    def advance(self, task: Any, amount: float = 1) -> None: ...
    def finish(self, task: Any) -> None: ...
    def plan(self, sites: int) -> None: ...
    def read_bytes(self, nbytes: int) -> None: ...


class NullReporter:
    counts_bytes = False

    def start(self, description: str, total: float | None = None) -> Any:
        return None

    def plan(self, sites: int) -> None:
        pass

    def read_bytes(self, nbytes: int) -> None:
        pass

    def update(self, task: Any, **kw: Any) -> None:
        pass

    def advance(self, task: Any, amount: float = 1) -> None:
        pass

    def finish(self, task: Any) -> None:
        pass


class RichReporter:
    """One bar per unit of work (e.g. per site), shown while it runs.

    With ``reads`` (a monitoring run), a first bar counts the whole run's site–scene reads:
    every site's bar adds its scenes when it starts and each step it advances is one read;
    the bytes the reads' windows span are added by the reader. Its total is the reads known
    so far plus, for the sites not yet searched (:meth:`plan` says how many there are), the
    mean of those searched, so its time left is an estimate from the first site on. A
    finished site's bar is then hidden: hundreds of sites would not fit on a screen.
    """

    def __init__(self, progress: Any, reads: bool = False):
        self.progress = progress
        self._lock = threading.Lock()
        self.counts_bytes = reads
        self._reads = progress.add_task("reads", total=None, nbytes=0) if reads else None
        self._sites = 0  # how many sites the run has (0: not said)
        self._started = 0
        self._known = 0.0
        self._tasks: set[Any] = set()

    def _retotal(self) -> None:
        if self._reads is None:
            return
        rest = max(0, self._sites - self._started)
        mean = self._known / self._started if self._started else 0.0
        total = self._known + rest * mean if self._started else None
        self.progress.update(self._reads, total=total,
                             description=f"reads ({self._started} of {self._sites} sites searched)"
                             if self._sites > self._started else "reads")

    def plan(self, sites: int) -> None:
        with self._lock:
            self._sites = sites
            self._retotal()

    def start(self, description: str, total: float | None = None) -> Any:
        with self._lock:
            task = self.progress.add_task(description, total=total)
            if self._reads is not None:
                self._tasks.add(task)
                self._started += 1
                self._known += total or 0
                self._retotal()
            return task

    def update(self, task: Any, **kw: Any) -> None:
        with self._lock:
            self.progress.update(task, **kw)

    def advance(self, task: Any, amount: float = 1) -> None:
        with self._lock:
            self.progress.advance(task, amount)
            if task in self._tasks:
                self.progress.advance(self._reads, amount)

    def read_bytes(self, nbytes: int) -> None:
        if self._reads is None:
            return
        with self._lock:
            t = self._task(self._reads)
            self.progress.update(self._reads, nbytes=t.fields.get("nbytes", 0) + nbytes)

    def _task(self, task: Any) -> Any:
        return self.progress.tasks[[x.id for x in self.progress.tasks].index(task)]

    def finish(self, task: Any) -> None:
        with self._lock:
            t = self._task(task)
            # a site's bar goes once it is done when the run-wide bar carries the count
            self.progress.update(task, completed=t.total or t.completed, visible=task not in self._tasks)


_current: Reporter = NullReporter()


def reporter() -> Reporter:
    return _current


#: Redraws per second: enough to read a rate by, and a tenth of a core less than rich's 10
#: for a scan whose workers need both cores.
REFRESH_PER_S = 4


@contextmanager
def rich_progress(transient: bool = False, unit: str | None = None, reads: bool = False) -> Iterator[Reporter]:
    """Show a rich progress display on stderr while the block runs.

    With ``unit`` (e.g. ``"km²"``) the bar counts that unit and shows its rate, for work
    measured in area rather than items. With ``reads`` (a monitoring run) a first bar counts
    the run's reads and their bytes, with the time left (see :class:`RichReporter`).
    """
    global _current
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    amount = (TextColumn("{task.completed:,.0f}/{task.total:,.0f} " + unit) if unit else MofNCompleteColumn())
    extra = [_RateColumn(unit)] if unit else [_BytesColumn()] if reads else []
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), amount, *extra,
                        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                        transient=transient, refresh_per_second=REFRESH_PER_S)
    prev = _current
    with progress:
        _current = RichReporter(progress, reads=reads)
        try:
            yield _current
        finally:
            _current = prev


def _RateColumn(unit: str) -> Any:  # noqa: N802 - a column factory, named like the class it makes
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.1f} {unit}/s" if speed else f"-- {unit}/s", style="progress.data.speed")

    return RateColumn()


def human_bytes(n: float) -> str:
    """``n`` bytes for a person (binary units, as ``--dry-run`` prints them)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def _BytesColumn() -> Any:  # noqa: N802 - a column factory, named like the class it makes
    """The bytes a bar's reads spanned and their rate; blank for bars that count none."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class BytesColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            if "nbytes" not in task.fields:
                return Text("")
            n = task.fields["nbytes"]
            rate = n / task.elapsed if task.elapsed else 0.0
            return Text(f"{human_bytes(n)} ({human_bytes(rate)}/s)", style="progress.data.speed")

    return BytesColumn()
