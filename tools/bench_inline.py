"""Transforms written inline and called eagerly, against raw JAX written the same way.

    python tools/bench_inline.py [--repeats 30] [--clock process|wall]

For grad, vector_grad, vmap and for_loop, three timings per transform, brainstate / raw JAX in
the same process (medians of interleaved repeats, milliseconds; the ratio is what matters on a
shared machine):

* repeated: the same inline expression called again (``T.grad(loss, w)(x)`` in a Python loop);
* new closure: a new function object each call, same code, a new array in its closure (a
  first call of its function key: nothing compiled can be reused);
* new code: brand-new code each call (``exec``), so nothing can be reused either.

The last two are first calls: the goal is 1.5x raw JAX's eager transform written the same way
(``jax.grad(raw_loss)(w, x)``...). Repeated calls: at most 1.0x. One line per case:
``case  brainstate_ms  raw_ms  ratio``.

The workload is issue 15's: a 16-element tanh loss, its gradient with respect to one ParamState.
``--clock process`` (default) times CPU seconds of the whole process (all threads), steadier
than wall time on a loaded machine; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp

import brainstate

T = brainstate.transform
N = 16


def _paired_ms(ours, raw, repeats, clock):
    """Medians (ms) of ``ours(i)`` and ``raw(i)``, alternating call by call."""
    jax.block_until_ready(ours(0))
    jax.block_until_ready(raw(0))
    a, b = [], []
    for i in range(1, repeats + 1):
        for fn, times in ((ours, a), (raw, b)) if i % 2 else ((raw, b), (ours, a)):
            start = clock()
            jax.block_until_ready(fn(i))
            times.append(clock() - start)
    return statistics.median(a) * 1e3, statistics.median(b) * 1e3


def _fresh(source: str, **namespace):
    """A function with brand-new code (a new code object each call)."""
    namespace = dict(namespace, jnp=jnp, jax=jax)
    exec(source, namespace)
    return namespace['f']


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--clock', choices=('process', 'wall'), default='process')
    options = parser.parse_args()
    repeats = options.repeats
    clock = time.process_time if options.clock == 'process' else time.perf_counter

    w = brainstate.ParamState(jnp.linspace(0.5, 1.5, N))
    x = jnp.linspace(-1., 1., N)
    xs = jnp.linspace(-1., 1., 8 * N).reshape(8, N)
    acc = brainstate.State(jnp.zeros(N))

    def loss(x):
        return jnp.sum(jnp.tanh(w.value * x))

    def raw_loss(w_, x_):
        return jnp.sum(jnp.tanh(w_ * x_))

    def per_lane(v):
        return jnp.tanh(v) * 2.0

    def body(v):
        acc.value = acc.value + jnp.tanh(v)

    def raw_body(a, v):
        return a + jnp.tanh(v), None

    rows = {}
    rows['grad: repeated inline'] = (lambda i: T.grad(loss, w)(x),
                                     lambda i: jax.grad(raw_loss)(w.value, x))
    rows['vector_grad: repeated inline'] = (
        lambda i: T.vector_grad(lambda v: jnp.tanh(w.value * v))(x),
        lambda i: jax.grad(lambda v: jnp.sum(jnp.tanh(w.value * v)))(x))
    rows['vmap: repeated inline'] = (lambda i: T.vmap(per_lane)(xs),
                                     lambda i: jax.vmap(per_lane)(xs))
    rows['for_loop: repeated inline'] = (lambda i: T.for_loop(body, xs),
                                         lambda i: jax.lax.scan(raw_body, acc.value, xs)[0])

    # A new closure value each call: a new array ``c`` in the function's closure.
    def closure(i):
        return jnp.full((N,), float(i))

    rows['grad: new closure each call'] = (
        lambda i: (lambda c: T.grad(lambda v: jnp.sum(jnp.tanh(w.value * v + c)), w)(x))(
            closure(i)),
        lambda i: (lambda c: jax.grad(lambda w_, v: jnp.sum(jnp.tanh(w_ * v + c)))(w.value, x))(
            closure(i)))
    rows['vector_grad: new closure each call'] = (
        lambda i: (lambda c: T.vector_grad(lambda v: jnp.tanh(w.value * v + c))(x))(closure(i)),
        lambda i: (lambda c: jax.vjp(lambda v: jnp.tanh(w.value * v + c), x)[1](
            jnp.ones_like(x))[0])(closure(i)))
    rows['vmap: new closure each call'] = (
        lambda i: (lambda c: T.vmap(lambda v: jnp.tanh(v + c) * 2.0)(xs))(closure(i)),
        lambda i: (lambda c: jax.vmap(lambda v: jnp.tanh(v + c) * 2.0)(xs))(closure(i)))

    def closure_loop(i):
        c = closure(i)

        def body(v):
            acc.value = acc.value + jnp.tanh(v + c)
        return T.for_loop(body, xs)

    def closure_loop_raw(i):
        c = closure(i)

        def body(a, v):
            return a + jnp.tanh(v + c), None
        return jax.lax.scan(body, acc.value, xs)[0]

    rows['for_loop: new closure each call'] = (closure_loop, closure_loop_raw)

    # Brand-new code each call (a new constant in the source makes a new code object).
    grad_src = 'def f(v):\n    return jnp.sum(jnp.tanh(w.value * v + {i}.0))\n'
    grad_raw = 'def f(w_, v):\n    return jnp.sum(jnp.tanh(w_ * v + {i}.0))\n'
    vg_src = 'def f(v):\n    return jnp.tanh(w.value * v + {i}.0)\n'
    vg_raw = 'def f(v):\n    return jnp.tanh(w * v + {i}.0)\n'
    vmap_src = 'def f(v):\n    return jnp.tanh(v + {i}.0) * 2.0\n'
    loop_src = 'def f(v):\n    acc.value = acc.value + jnp.tanh(v + {i}.0)\n'
    loop_raw = 'def f(a, v):\n    return a + jnp.tanh(v + {i}.0), None\n'
    k = 1000
    rows['grad: new code each call'] = (
        lambda i: T.grad(_fresh(grad_src.format(i=i + k), w=w), w)(x),
        lambda i: jax.grad(_fresh(grad_raw.format(i=i + k)))(w.value, x))
    rows['vector_grad: new code each call'] = (
        lambda i: T.vector_grad(_fresh(vg_src.format(i=i + k), w=w))(x),
        lambda i: jax.vjp(_fresh(vg_raw.format(i=i + k), w=w.value), x)[1](
            jnp.ones_like(x))[0])
    rows['vmap: new code each call'] = (
        lambda i: T.vmap(_fresh(vmap_src.format(i=i + k)))(xs),
        lambda i: jax.vmap(_fresh(vmap_src.format(i=i + k)))(xs))
    rows['for_loop: new code each call'] = (
        lambda i: T.for_loop(_fresh(loop_src.format(i=i + k), acc=acc), xs),
        lambda i: jax.lax.scan(_fresh(loop_raw.format(i=i + k)), acc.value, xs)[0])

    print(f'load average {os.getloadavg()[0]:.2f}; {options.clock} time; medians of '
          f'{repeats} interleaved repeats')
    print(f'{"case":36s} {"brainstate ms":>14s} {"raw JAX ms":>11s} {"ratio":>7s}')
    for name, (ours, raw) in rows.items():
        a, b = _paired_ms(ours, raw, repeats, clock)
        print(f'{name:36s} {a:14.3f} {b:11.3f} {a / b:7.2f}', flush=True)
    print('eager cache:', T.eager_cache_info())
    print(f'load average {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
