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
    def start(self, description: str, total: float | None = None) -> Any: ...
    def update(self, task: Any, **kw: Any) -> None: ...
    def advance(self, task: Any, amount: float = 1) -> None: ...
    def finish(self, task: Any) -> None: ...


class NullReporter:
    def start(self, description: str, total: float | None = None) -> Any:
        return None

    def update(self, task: Any, **kw: Any) -> None:
        pass

    def advance(self, task: Any, amount: float = 1) -> None:
        pass

    def finish(self, task: Any) -> None:
        pass


class RichReporter:
    """One bar per unit of work (e.g. per site), shown while it runs."""

    def __init__(self, progress: Any):
        self.progress = progress
        self._lock = threading.Lock()

    def start(self, description: str, total: float | None = None) -> Any:
        with self._lock:
            return self.progress.add_task(description, total=total)

    def update(self, task: Any, **kw: Any) -> None:
        with self._lock:
            self.progress.update(task, **kw)

    def advance(self, task: Any, amount: float = 1) -> None:
        with self._lock:
            self.progress.advance(task, amount)

    def finish(self, task: Any) -> None:
        with self._lock:
            t = self.progress.tasks[[x.id for x in self.progress.tasks].index(task)]
            self.progress.update(task, completed=t.total or t.completed, visible=True)


_current: Reporter = NullReporter()


def reporter() -> Reporter:
    return _current


#: Redraws per second: enough to read a rate by, and a tenth of a core less than rich's 10
#: for a scan whose workers need both cores.
REFRESH_PER_S = 4


@contextmanager
def rich_progress(transient: bool = False, unit: str | None = None) -> Iterator[Reporter]:
    """Show a rich progress display on stderr while the block runs.

    With ``unit`` (e.g. ``"km²"``) the bar counts that unit and shows its rate, for work
    measured in area rather than items.
    """
    global _current
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    amount = (TextColumn("{task.completed:,.0f}/{task.total:,.0f} " + unit) if unit else MofNCompleteColumn())
    extra = [_RateColumn(unit)] if unit else []
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), amount, *extra,
                        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                        transient=transient, refresh_per_second=REFRESH_PER_S)
    prev = _current
    with progress:
        _current = RichReporter(progress)
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
