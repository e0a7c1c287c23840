"""Console output. Progress and messages go to stderr, data (tables, plans) to stdout, so the
output of `invoke list` can be piped. Every long step is timed."""
from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Not on a terminal (CI logs, pipes) rich would wrap at 80 columns; image tags need more.
err = Console(stderr=True, highlight=False, width=None if Console(stderr=True).is_terminal else 160)
out = Console(highlight=False, width=None if Console().is_terminal else 160)


def size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} m {int(s % 60):02d} s"


@contextmanager
def step(title: str):
    """Print a step's start and end with its duration; a failure is marked and re-raised. A step that
    fails without raising (a check that reports instead) sets `outcome.failed` to say why."""
    start = time.monotonic()
    err.print(f"[bold cyan]>[/] {title}")
    outcome = Outcome()
    try:
        yield outcome
    except BaseException:
        err.print(f"[bold red]x[/] {title} [dim]failed after {seconds(time.monotonic() - start)}[/]")
        raise
    if outcome.failed:
        err.print(f"[bold red]x[/] {title} [dim]failed after {seconds(time.monotonic() - start)}:[/] "
                  f"{escape(outcome.failed)}")
    else:
        err.print(f"[green]ok[/] {title} [dim]({seconds(time.monotonic() - start)})[/]")


class Outcome:
    """What a `step` body reports when it fails without raising."""
    failed: str | None = None


def info(message: str) -> None:
    err.print(message)


def detail(message: str) -> None:
    err.print(f"  [dim]{escape(message)}[/]")


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}")


def error(message: str, hint: str | None = None) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"  [bold]hint:[/] {escape(hint)}")


def table(columns: list[str], rows: list[list[str]], title: str | None = None, console: Console = out) -> None:
    t = Table(title=title, title_justify="left", show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[str(x) for x in r])
    console.print(t)
