"""Progress and log lines, one facility for every stage.

On a terminal (stderr is a TTY) `progress` is a tqdm bar, as before. Otherwise (a batch
job, a log file, CI) there is no bar: a line at most every `INTERVAL` seconds with the
fraction done and an estimate of the time left, and a line when it is done:

    Training SAE: 37% (370/1000), 1m12s left, loss=0.12
    Training SAE: done 1000/1000 in 2m03s

`log(line)` prints one line to stdout: the story of a run (`[stage] started`, one line
per model). Progress lines go to stderr, flushed, where tqdm's bar goes on a terminal: a
command whose stdout is its result (`saelab train-sae` prints its metrics as JSON) keeps
it clean, and a scheduler's log that takes both streams (`> log 2>&1`) still reads in
order. An error's one line is printed last on stderr, after any progress line. Both print
on rank 0 only under torchrun (every rank runs the same loop; one copy of each line is
enough).

Nothing here imports torch: the rank comes from torch.distributed only if something else
has imported and initialised it, else from the RANK variable torchrun sets.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable

INTERVAL = 30.0
"""Seconds between two progress lines when not on a terminal (tests lower it)."""

clock = time.monotonic  # the time source of the progress lines (tests replace it)


def rank() -> int:
    """This process's torch.distributed rank (0 when not distributed)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK") or 0)
    except ValueError:
        return 0


def log(line: str) -> None:
    """Print one line (flushed) to stdout, on rank 0 only."""
    if rank() == 0:
        print(line, file=sys.stdout, flush=True)


def _on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def progress(iterable: Iterable | None = None, total: float | None = None, desc: str = "", *,
             disable: bool | None = False, **bar_options: Any):
    """A progress indicator used like tqdm: iterate over it, or call `update(n)`;
    `set_postfix(...)`, `set_description(...)`, `close()`, and `with progress(...) as p:`.

    On a terminal: a tqdm bar (`bar_options`, e.g. leave or mininterval, go to tqdm).
    Otherwise: the throttled lines of `Lines`. Silent with `disable=True` and on a rank
    other than 0. `disable=None` (tqdm's "off when not a terminal") counts as False: off
    a terminal there are lines instead of a bar."""
    if disable or rank() != 0:
        return Lines(iterable, total, desc, quiet=True, **bar_options)
    if _on_terminal():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, **bar_options)
    return Lines(iterable, total, desc, **bar_options)


def duration(seconds: float) -> str:
    """12s, 1m05s, 2h03m."""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _count(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) and not x.is_integer() else str(int(x))


class Lines:
    """tqdm's interface, printing `log` lines instead of drawing a bar: one at most every
    `INTERVAL` seconds (the fraction done, the count, the time left at the rate so far, the
    postfix) and one when closed after finishing. Closed by an error (or left unfinished),
    it says nothing more: the error speaks."""

    def __init__(self, iterable: Iterable | None = None, total: float | None = None, desc: str = "", *,
                 quiet: bool = False, initial: float = 0, **_ignored: Any):
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        self.iterable, self.total, self.desc, self.quiet = iterable, total, desc, quiet
        self.n = self.initial = initial
        self.postfix = ""
        self.disable = quiet
        self.start = self.last = clock()
        self.closed = False

    # -- what tqdm's users call
    def __iter__(self):
        if self.iterable is None:
            raise TypeError("progress() without an iterable is updated by hand, not iterated")
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __len__(self) -> int:
        return int(self.total) if self.total is not None else len(self.iterable)  # type: ignore[arg-type]

    def __enter__(self) -> "Lines":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.closed = True

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.closed or (self.total is not None and self.n >= self.total):
            return  # the done line says the rest
        now = clock()
        if now - self.last >= INTERVAL:
            self.last = now
            self._print(self.line(now))

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    set_description_str = set_description

    def refresh(self, *_: Any, **__: Any) -> None:
        pass

    def clear(self, *_: Any, **__: Any) -> None:
        pass

    def reset(self, total: float | None = None) -> None:
        self.n = self.initial = 0
        self.total = total if total is not None else self.total
        self.start = self.last = clock()
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.total is None or self.n >= self.total:
            count = _count(self.n) if self.total is None else f"{_count(self.n)}/{_count(self.total)}"
            self._print(f"{self.desc}: done {count} in {duration(clock() - self.start)}")

    # -- the lines
    def line(self, now: float) -> str:
        """The progress line at time `now`."""
        elapsed = now - self.start
        if self.total:
            done = self.n - self.initial
            left = (f"{duration(elapsed * (self.total - self.n) / done)} left" if done > 0
                    else "time left unknown")
            pct = int(100 * self.n / self.total)  # floored: 100% only when done
            text = f"{pct}% ({_count(self.n)}/{_count(self.total)}), {left}"
        else:
            text = f"{_count(self.n)} done in {duration(elapsed)}"
        return f"{self.desc}: {text}" + (f", {self.postfix}" if self.postfix else "")

    def _print(self, line: str) -> None:
        if not self.quiet and rank() == 0:
            print(line, file=sys.stderr, flush=True)  # where tqdm's bar would be
