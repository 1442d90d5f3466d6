"""The one progress display every long command uses: a rich bar on stderr.

stdout stays clean for tables and `--json -`; when stderr is not a terminal
rich draws nothing live, and `note` lines still appear, one per event.
"""

from typing import Optional


class Progress:
    """`with Progress(enabled, total, "decoding") as p: p.advance("run 1/3")`.

    Disabled, every method is a no-op, so callers never branch on it."""

    def __init__(self, enabled: bool, total: Optional[int] = None, description: str = ""):
        self.enabled = enabled
        self.total = total
        self.description = description
        self._bar = None
        self._task = None

    def __enter__(self):
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

        self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def advance(self, description: Optional[str] = None, steps: int = 1):
        if self._bar is not None:
            kw = {"description": description} if description is not None else {}
            self._bar.update(self._task, advance=steps, **kw)

    def reset(self, total: Optional[int], description: str):
        """Start over with a new total (e.g. once the model is open and the
        number of runs is known), keeping the elapsed-time clock of the display."""
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total, completed=0, description=description)

    def describe(self, description: str):
        if self._bar is not None:
            self._bar.update(self._task, description=description)

    def note(self, message: str):
        """A line on stderr that stays (above the bar while it is drawn)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            import click

            click.echo(message, err=True)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
        return False


def schedule_ticker(progress: Progress, order, warmup: int, prefix: str = ""):
    """An `on_token(run, n)` callback for `decode.measure` over an interleaved
    `order` of run kinds ("untraced", "graph", "kernel"): each kind counts its
    own runs, traced ones say how they are traced; `prefix` leads every line."""
    counts, ordinal = {}, []
    for kind in order:
        counts[kind] = counts.get(kind, 0) + 1
        ordinal.append(counts[kind])

    def tick(run, n):
        kind = order[run]
        label = "" if kind == "untraced" else f"{kind}-traced "
        phase = "warm-up" if n < warmup else "measuring"
        progress.advance(f"{prefix}{label}run {ordinal[run]}/{counts[kind]} {phase}")

    return tick
