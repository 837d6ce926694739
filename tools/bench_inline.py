"""Transforms written inline and called eagerly, against raw JAX written the same way.

    python tools/bench_inline.py [--repeats 30]

For grad, vector_grad, vmap and for_loop, three timings per transform, brainstate / raw JAX in
the same process (medians, milliseconds; the ratio is what matters on a shared machine):

* repeated: the same inline expression called again (``T.grad(loss, w)(x)`` in a Python loop);
* new closure: a new function object each call, same code, a new array in its closure (a
  traced call whose program is already compiled);
* first call: brand-new code each call (``exec``), so nothing can be reused: trace + compile
  for us, op-by-op dispatch for raw JAX.

The workload is issue 15's: a 16-element tanh loss, its gradient with respect to one ParamState.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

import brainstate

T = brainstate.transform
N = 16


def _median_ms(fn, repeats):
    jax.block_until_ready(fn(0))
    times = []
    for i in range(1, repeats + 1):
        start = time.perf_counter()
        jax.block_until_ready(fn(i))
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _fresh(source: str, **namespace):
    """A function with brand-new code (a new code object each call)."""
    namespace = dict(namespace, jnp=jnp)
    exec(source, namespace)
    return namespace['f']


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=30)
    repeats = parser.parse_args().repeats

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

    cases = {
        'grad': (lambda i: T.grad(loss, w)(x),
                 lambda i: jax.grad(raw_loss)(w.value, x)),
        'vector_grad': (lambda i: T.vector_grad(lambda v: jnp.tanh(w.value * v))(x),
                        lambda i: jax.grad(lambda v: jnp.sum(jnp.tanh(w.value * v)))(x)),
        'vmap': (lambda i: T.vmap(per_lane)(xs), lambda i: jax.vmap(per_lane)(xs)),
        'for_loop': (lambda i: T.for_loop(body, xs),
                     lambda i: jax.lax.scan(raw_body, acc.value, xs)[0]),
    }

    def closure_grad(i):
        c = jnp.full((N,), float(i))
        return T.grad(lambda v: jnp.sum(jnp.tanh(w.value * v + c)))(x)

    def closure_raw(i):
        c = jnp.full((N,), float(i))
        return jax.grad(lambda w_, v: jnp.sum(jnp.tanh(w_ * v + c)))(w.value, x)

    source = 'def f(v):\n    return jnp.sum(jnp.tanh(w.value * v + {i}.0))\n'
    raw_source = 'def f(w_, v):\n    return jnp.sum(jnp.tanh(w_ * v + {i}.0))\n'

    def first_grad(i):
        return T.grad(_fresh(source.format(i=i + 1000), w=w))(x)

    def first_raw(i):
        return jax.grad(_fresh(raw_source.format(i=i + 1000)))(w.value, x)

    print(f'{"case":32s} {"brainstate ms":>14s} {"raw JAX ms":>11s} {"ratio":>7s}')

    def row(name, ours, raw):
        a, b = _median_ms(ours, repeats), _median_ms(raw, repeats)
        print(f'{name:32s} {a:14.3f} {b:11.3f} {a / b:7.2f}')

    for name, (ours, raw) in cases.items():
        row(f'{name}: repeated inline', ours, raw)
    row('grad: new closure each call', closure_grad, closure_raw)
    row('grad: new code each call', first_grad, first_raw)
    print('eager cache:', T.eager_cache_info())


if __name__ == '__main__':
    main()
