"""ProgressBar: a live progress bar for long compiled loops.

The loop carries an iteration counter; every ``freq`` iterations the compiled code sends the
count to the host through an ordered ``jax.debug.callback``, which draws the bar with ``tqdm``
when it is installed (``pip install brainstate[progress]``) and a plain text line otherwise.

The callback is part of the compiled program, so a jitted simulation keeps its compilation
cache: each run of the compiled loop starts a fresh bar on the host.
"""

from __future__ import annotations

import sys

import jax
from jax import lax

from .._errors import ArgumentTypeError, ArgumentValueError

__all__ = ['ProgressBar']


class ProgressBar:
    """Show the progress of a ``for_loop`` / ``scan`` while it runs.

    Args:
      freq: update the bar every ``freq`` iterations. ``None`` (with ``count=None``) updates it
        20 times over the loop. Each update costs one round trip to the host, so keep it rare
        for loops of cheap steps.
      desc: a label shown before the bar.
      count: update the bar this many times over the loop instead of every ``freq`` steps.
      **kwargs: passed to ``tqdm.tqdm`` when tqdm is installed.

    Example::

        def step(t):
            net.update(t)
            return net.V.value

        vs = brainstate.transform.for_loop(step, jnp.arange(10000),
                                           pbar=brainstate.transform.ProgressBar(freq=500))

    ``pbar=True`` uses the defaults; ``pbar=100`` means ``ProgressBar(freq=100)``.
    """

    def __init__(self, freq: int | None = None, desc: str | None = None,
                 count: int | None = None, **kwargs):
        if freq is not None and count is not None:
            raise ArgumentValueError('ProgressBar takes `freq` or `count`, not both.')
        for name, value in (('freq', freq), ('count', count)):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ArgumentValueError(
                    f'ProgressBar `{name}` must be a positive int, got {value!r}.')
        self.freq = freq
        self.count = count
        self.desc = desc
        self.kwargs = kwargs

    def step_every(self, length: int) -> int:
        """How many iterations pass between two updates of a loop of ``length`` iterations."""
        if self.freq is not None:
            return self.freq
        updates = self.count if self.count is not None else 20
        return max(1, -(-length // updates))

    def emit(self, done, length: int):
        """Inside a traced loop body: report that ``done`` (a traced int) iterations are
        finished, if it is time to."""
        every = self.step_every(length)
        display = _Display(self, length)
        hit = (done % every == 0) | (done == length)
        lax.cond(hit, lambda: jax.debug.callback(display.update, done, ordered=True),
                 lambda: None)

    def __repr__(self):
        return f'ProgressBar(freq={self.freq}, count={self.count}, desc={self.desc!r})'


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


class _Display:
    """The host side of one loop's bar: starts a bar when a run begins, closes it at the end."""

    def __init__(self, pbar: ProgressBar, length: int):
        self.pbar = pbar
        self.length = length
        self.bar = None
        self.last = 0

    def update(self, done):
        done = int(done)
        if self.bar is None or done <= self.last:
            self._start()
        self._advance(done - self.last)
        self.last = done
        if done >= self.length:
            self._close()

    def _start(self):
        self._close()
        self.last = 0
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.bar = _PlainBar(self.length, self.pbar.desc)
        else:
            self.bar = tqdm(total=self.length, desc=self.pbar.desc, **self.pbar.kwargs)

    def _advance(self, n):
        if self.bar is not None and n > 0:
            self.bar.update(n)

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _PlainBar:
    """A one-line text progress report for when tqdm is not installed."""

    def __init__(self, total: int, desc: str | None, stream=None):
        self.total = total
        self.n = 0
        self.desc = desc or 'Running'
        self.stream = stream or sys.stderr

    def update(self, n: int):
        self.n += n
        percent = 100.0 * self.n / self.total if self.total else 100.0
        self.stream.write(f'\r{self.desc}: {self.n}/{self.total} ({percent:.0f}%)')
        self.stream.flush()

    def close(self):
        self.stream.write('\n')
        self.stream.flush()
