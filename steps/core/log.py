"""One logging set-up for every program (time, level, file:line, message), and one progress
bar for every long loop: tqdm's bar on a terminal; in a log file or a pipe, one plain line
per few percent (Kaldi's logs read that way), never carriage-return redraws. And one
TensorBoard writer for the training programs."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

FORMAT = "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"

# Percent between two lines in a log; LM2AM_PROGRESS_PERCENT changes it. Transient bars
# (leave=False: the inner loops of an epoch) print at a quarter of that rate.
PROGRESS_PERCENT = 5.0
UNKNOWN_TOTAL_EVERY_S = 60.0  # a loop of unknown length: one line a minute


def setup_logging(verbose: bool = False, log_file: str | Path | None = None) -> None:
    """Logs to stderr and, if given, also to log_file (appending). Safe to call twice."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=FORMAT,
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=handlers,
        force=True,
    )


class _WholeLines:
    """A stream that lets whole lines through and drops tqdm's bare "\\r" and "\\n"
    (its clearing and closing writes), which are noise in a log."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        if text.strip():
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class LineProgress(tqdm):
    """tqdm that prints a whole line each `percent` percent (and a last one when it ends)
    instead of redrawing one line."""

    def __init__(self, *args, percent: float | None = None, **kwargs):
        leave = kwargs.get("leave", True)
        base = percent or float(os.environ.get("LM2AM_PROGRESS_PERCENT", PROGRESS_PERCENT))
        self._step = base if leave or leave is None else 4 * base
        self._next_percent: float | None = None
        self._printed_n: int | None = None
        self._printed_at = time.monotonic()
        kwargs.update(mininterval=0, miniters=1, dynamic_ncols=False,
                      file=_WholeLines(kwargs.get("file") or sys.stderr))
        super().__init__(*args, **kwargs)

    def _line(self) -> str:
        d = self.format_dict
        rate = self.format_sizeof(d["rate"] or 0) if d["rate"] else "?"
        postfix = f", {d['postfix']}" if d.get("postfix") else ""
        desc = f"{d['prefix']}: " if d.get("prefix") else ""
        elapsed = self.format_interval(d["elapsed"])
        if self.total:
            left = ((self.total - self.n) / d["rate"]) if d["rate"] else None
            remaining = self.format_interval(left) if left is not None else "?"
            return (f"{desc}{100 * self.n / self.total:3.0f}% {self.n}/{self.total} "
                    f"[{elapsed}<{remaining}, {rate}{d['unit']}/s{postfix}]")
        return f"{desc}{self.n}{d['unit']} [{elapsed}, {rate}{d['unit']}/s{postfix}]"

    def _emit(self) -> None:
        self.fp.write(self._line() + "\n")
        self.fp.flush()
        self._printed_n, self._printed_at = self.n, time.monotonic()

    def display(self, msg=None, pos=None):
        if msg is not None or self.n == self._printed_n:
            return True  # a clearing call (leave=False) or nothing new
        if self.total:
            percent = 100 * self.n / self.total
            if self._next_percent is None:  # first call; a resumed loop starts at `initial`
                self._next_percent = (percent // self._step + 1) * self._step
                return True
            if percent + 1e-9 >= self._next_percent or self.n >= self.total:
                self._next_percent = (percent // self._step + 1) * self._step
                self._emit()
        elif self.n and time.monotonic() - self._printed_at >= UNKNOWN_TOTAL_EVERY_S:
            self._emit()
        return True

    def close(self):
        if not self.disable and self.n and self.n != self._printed_n:
            self._emit()  # how far it got, also when stopped early
        super().close()


def progress(iterable=None, desc: str | None = None, total: int | None = None, **kwargs) -> tqdm:
    """The progress bar for every long loop: tqdm's on a terminal, LineProgress elsewhere.
    Takes tqdm's arguments (mininterval is the terminal's business and ignored in logs)."""
    if sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, **kwargs)
    kwargs.pop("mininterval", None)
    kwargs.pop("miniters", None)
    return LineProgress(iterable, desc=desc, total=total, **kwargs)


def summary_writer(path: str | Path):
    """A TensorBoard SummaryWriter into path, or None (with a warning) where TensorBoard is
    not installed: training goes on without curves."""
    try:
        # here, not at the top: optional, and a second of imports that only training needs
        from torch.utils.tensorboard import SummaryWriter  # optional: training goes on without curves
    except ImportError as e:
        logging.getLogger(__name__).warning("TensorBoard unavailable (%s); no curves written", e)
        return None
    return SummaryWriter(str(path))
