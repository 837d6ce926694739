"""ProgressBar: a live progress bar for long compiled loops.

The loop carries an iteration counter; the compiled body calls a :class:`ProgressBarRunner`,
which sends the count to the host through ordered ``jax.debug.callback``s: one that opens the
bar at the first iteration, one every ``print_freq`` iterations, one that closes it at the
last. The bar is drawn by ``tqdm`` when it is installed (``pip install brainstate[progress]``)
and by :class:`_FallbackProgressBar`, a small dependency-free text bar, otherwise.

The callbacks are part of the compiled program, so a jitted simulation keeps its compilation
cache: each run of the compiled loop opens a fresh bar on the host.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp

from .._errors import ArgumentTypeError, ArgumentValueError

__all__ = ['ProgressBar', 'ProgressBarRunner']

# The ``jax.named_scope`` the loops trace a progress bar's bookkeeping in (the iteration counter
# and the host callbacks): ``brainstate.ir.progress_bar_nodes`` finds those nodes by it.
from ..ir._scopes import PROGRESS_BAR_SCOPE  # noqa: E402

try:
    from tqdm.auto import tqdm
    tqdm_installed = True
except ImportError:  # pragma: no cover - depends on the environment
    tqdm = None
    tqdm_installed = False


class _FallbackProgressBar:
    """A tqdm-like text bar (``desc: 40%|████      | 4/10 [00:01<00:02, 3.99it/s]``) used when
    tqdm is not installed. On a terminal it redraws one line (``\\r``); elsewhere it writes one
    line per update. Unknown keyword arguments of tqdm are accepted and ignored."""

    def __init__(self, iterable=None, *, total: int | None = None, desc: str | None = None,
                 file=None, disable: bool = False, ncols: int | None = None,
                 _time: Callable[[], float] | None = None, **ignored):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except TypeError:
                total = None
        self.total = total
        self.desc = desc
        self.file = file if file is not None else sys.stderr
        self.disable = disable
        self.ncols = ncols if ncols is not None else 80
        self._time = _time or time.monotonic
        self.n = 0
        self.closed = False
        self._start = self._time()
        self._tty = bool(getattr(self.file, 'isatty', lambda: False)())
        encoding = (getattr(self.file, 'encoding', None) or 'utf-8').lower()
        self._fill, self._empty = ('█', ' ') if 'utf' in encoding else ('#', '-')

    @staticmethod
    def _format_interval(seconds) -> str:
        """``MM:SS``, or ``H:MM:SS``; ``?`` for an unknown interval."""
        try:
            if math.isnan(seconds) or math.isinf(seconds):
                return '?'
        except TypeError:
            return '?'
        seconds = max(0, int(seconds))
        minutes, secs = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        if hours:
            return f'{hours}:{minutes:02d}:{secs:02d}'
        return f'{minutes:02d}:{secs:02d}'

    def _line(self) -> str:
        elapsed = self._time() - self._start
        rate = self.n / elapsed if elapsed > 0 else None
        rate_text = f'{rate:.2f}it/s' if rate else '?it/s'
        prefix = f'{self.desc}: ' if self.desc else ''
        if not self.total:
            return f'{prefix}{self.n}it [{self._format_interval(elapsed)}, {rate_text}]'
        fraction = min(max(self.n / self.total, 0.0), 1.0)
        remaining = (self.total - self.n) / rate if rate else float('nan')
        left = f'{prefix}{fraction * 100:3.0f}%|'
        right = (f'| {self.n}/{self.total} [{self._format_interval(elapsed)}<'
                 f'{self._format_interval(remaining)}, {rate_text}]')
        width = self.ncols - len(left) - len(right)
        if width < 4:  # too narrow for a bar: keep the counts
            return f'{prefix}{fraction * 100:3.0f}% {self.n}/{self.total} ' \
                   f'[{self._format_interval(elapsed)}, {rate_text}]'
        filled = int(fraction * width)
        return left + self._fill * filled + self._empty * (width - filled) + right

    def _write(self, text: str):
        try:
            self.file.write(text)
        except UnicodeEncodeError:
            encoding = getattr(self.file, 'encoding', None) or 'ascii'
            self.file.write(text.encode(encoding, 'replace').decode(encoding))
        flush = getattr(self.file, 'flush', None)
        if flush is not None:
            flush()

    def _draw(self):
        line = self._line()
        self._write('\r' + line if self._tty else line + '\n')

    def update(self, n: int = 1):
        if self.disable or self.closed:
            return
        self.n += n
        self._draw()

    def set_description(self, desc: str | None = None, refresh: bool = True):
        self.desc = desc
        if refresh and not self.disable and not self.closed:
            self._draw()

    def close(self):
        if self.disable or self.closed:
            return
        self.closed = True
        if self._tty:
            self._write('\n')


def _check_desc(desc):
    if desc is None or isinstance(desc, str):
        return desc
    if not isinstance(desc, (tuple, list)):
        raise ArgumentTypeError(
            f'ProgressBar desc must be a string or a (format_string, function) pair, got '
            f'{type(desc).__name__}.')
    if len(desc) != 2:
        raise ArgumentValueError(
            f'ProgressBar desc as a sequence must be (format_string, function), got '
            f'{len(desc)} item(s).')
    if not isinstance(desc[0], str):
        raise ArgumentTypeError(f'ProgressBar desc[0] must be a format string, got '
                                f'{type(desc[0]).__name__}.')
    if not callable(desc[1]):
        raise ArgumentTypeError(f'ProgressBar desc[1] must be a function of the loop data '
                                f'returning a dict, got {type(desc[1]).__name__}.')
    return tuple(desc)


class ProgressBar:
    """Show the progress of a ``for_loop`` / ``scan`` (and their checkpointed forms) while it
    runs.

    Args:
      freq: update the bar every ``freq`` iterations (a positive int).
      count: update it ``count`` times over the loop instead (not with ``freq``).
        With neither, it updates every iteration for loops of up to 20 iterations, else about
        every 5%. Each update is one round trip to the host: keep them rare for cheap steps.
      desc: a label, or ``(format_string, function)``: ``function(data)`` gets
        ``{'i': iteration}`` and returns the dict the format string is filled with.
      **kwargs: passed to ``tqdm`` (or the fallback bar).

    Example::

        vs = brainstate.transform.for_loop(step, jnp.arange(10000),
                                           pbar=brainstate.transform.ProgressBar(freq=500))

    ``pbar=True`` uses the defaults; ``pbar=100`` means ``ProgressBar(freq=100)``.
    """

    def __init__(self, freq: int | None = None, count: int | None = None, desc=None, **kwargs):
        if freq is not None and count is not None:
            raise ArgumentValueError('ProgressBar takes `freq` or `count`, not both.')
        for name, value in (('freq', freq), ('count', count)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or
                                      value <= 0):
                raise ArgumentValueError(
                    f'ProgressBar `{name}` must be a positive int, got {value!r}.')
        self.print_freq = freq
        self.count = count
        self.desc = _check_desc(desc)
        self.kwargs = kwargs

    @property
    def freq(self):
        return self.print_freq

    def init(self, n: int) -> 'ProgressBarRunner':
        """The runner for a loop of ``n`` iterations (checks ``freq``/``count`` against it)."""
        if self.print_freq is not None:
            if self.print_freq > n:
                raise ArgumentValueError(
                    f'ProgressBar freq={self.print_freq} exceeds the loop length {n}.')
            freq = self.print_freq
        elif self.count is not None:
            if self.count > n:
                raise ArgumentValueError(
                    f'ProgressBar count={self.count} exceeds the loop length {n}.')
            freq = n // self.count
        else:
            freq = 1 if n <= 20 else n // 20
        message = self.desc if self.desc is not None else 'Running'
        return ProgressBarRunner(n, freq, n % freq, message, **self.kwargs)

    def step_every(self, length: int) -> int:
        """How many iterations pass between two updates of a loop of ``length`` iterations."""
        return self.init(length).print_freq

    def emit(self, done, length: int):
        """Inside a traced loop body: report that ``done`` (a traced int, 1-based) iterations
        are finished."""
        self.init(length)(done - 1)

    def __repr__(self):
        return f'ProgressBar(freq={self.print_freq}, count={self.count}, desc={self.desc!r})'


class ProgressBarRunner:
    """The compiled side of one loop's bar: ``runner(iter_num)`` (traced, 0-based) opens the
    bar at iteration 0, advances it every ``print_freq`` iterations and closes it (after the
    last ``remainder`` steps) at iteration ``n - 1``; later calls do nothing."""

    def __init__(self, n: int, print_freq: int, remainder: int, message, **kwargs):
        self.tqdm_bars: dict = {}
        self.kwargs = kwargs
        self.n = n
        self.print_freq = print_freq
        self.remainder = remainder
        self.message = message
        self.is_tuple_message = isinstance(message, tuple)

    def _description(self, data) -> str:
        if self.is_tuple_message:
            return self.message[0].format(**data)
        return self.message

    def _define_tqdm(self, data):
        from . import _progress_bar as module
        kwargs = dict(self.kwargs)
        if module.tqdm_installed and module.tqdm is not None:
            bar = module.tqdm(total=self.n, **kwargs)
        else:
            bar = module._FallbackProgressBar(total=self.n, **kwargs)
        self.tqdm_bars[0] = bar
        bar.set_description(self._description(data), refresh=False)

    def _update_tqdm(self, data):
        bar = self.tqdm_bars.get(0)
        if bar is None:
            return
        bar.update(self.print_freq)
        if self.is_tuple_message:
            bar.set_description(self._description(data), refresh=False)

    def _close_tqdm(self, data):
        bar = self.tqdm_bars.pop(0, None)
        if bar is None:
            return
        if self.remainder:
            bar.update(self.remainder)
        bar.close()

    def __call__(self, iter_num, **kwargs):
        data = {'i': iter_num, **kwargs}
        if self.is_tuple_message:
            data = self.message[1](data)
            if not isinstance(data, dict):
                raise ArgumentTypeError(
                    f'ProgressBar desc function must return a dict (to fill '
                    f'{self.message[0]!r}), got {type(data).__name__}.')
        iter_num = jnp.asarray(iter_num)

        def call(fn):
            return lambda data: jax.debug.callback(fn, data, ordered=True)

        def nothing(data):
            pass

        freq, last = self.print_freq, self.n - 1
        jax.lax.cond(iter_num == 0, call(self._define_tqdm), nothing, data)
        # The last iteration's update and the close are one callback: nothing can land between
        # them, whatever order the loop's callbacks run in.
        jax.lax.cond((iter_num % freq == freq - 1) & (iter_num < last),
                     call(self._update_tqdm), nothing, data)
        jax.lax.cond(iter_num == last, call(self._finish), nothing, data)

    def _finish(self, data):
        if (self.n - 1) % self.print_freq == self.print_freq - 1:
            self._update_tqdm(data)
        self._close_tqdm(data)


def as_progress_bar(pbar) -> ProgressBar | None:
    """Normalize the ``pbar=`` argument of the loops."""
    if pbar is None or pbar is False:
        return None
    if pbar is True:
        return ProgressBar()
    if isinstance(pbar, ProgressBar):
        return pbar
    if isinstance(pbar, int):
        return ProgressBar(freq=pbar)
    raise ArgumentTypeError(
        f'pbar must be a ProgressBar, True, or an int (the update frequency); got '
        f'{pbar!r}.')
