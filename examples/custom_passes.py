"""Two custom passes, written with the same public API as brainstate's built-in ones.

    python examples/custom_passes.py

* ``state-flops`` (an analysis): how many floating-point operations feed each state write,
  recorded in the write node's ``meta`` and so shown in the printed IR.
* ``drop-multiply-by-one`` (a rewrite): ``x * 1.0`` becomes ``x``.

docs/writing-a-pass.md walks through both.
"""

import math

import jax.numpy as jnp
import numpy as np

import brainstate
from brainstate.ir import Literal


def node_flops(node) -> int:
    """A rough count: 2*M*N*K for a matmul, one per output element for elementwise math."""
    if node.kind != 'primitive':
        return 0
    out = node.outputs[0].aval if node.outputs else None
    if out is None:
        return 0
    size = math.prod(out.shape)
    if node.name == 'dot_general':
        (contracting, _), _ = node.params['dimension_numbers']
        lhs = node.inputs[0].aval
        return 2 * size * math.prod(lhs.shape[d] for d in contracting)
    if node.name in ('add', 'sub', 'mul', 'div', 'tanh', 'exp', 'log', 'sin', 'cos', 'max',
                     'min', 'neg', 'logistic', 'pow', 'integer_pow', 'sqrt', 'rsqrt'):
        return size
    return 0


@brainstate.passes.register('state-flops')
def state_flops(graph, stats):
    """Count the FLOPs of the computation feeding each state write (meta 'flops')."""
    for node in graph.walk():
        if node.kind != 'state_write':
            continue
        # Walk the write's operands back to their producers (the backward slice).
        seen, stack, flops = set(), list(node.inputs), 0
        while stack:
            value = stack.pop()
            producer = getattr(value, 'producer', None)  # a Literal has none
            if producer is None or id(producer) in seen:
                continue
            seen.add(id(producer))
            flops += node_flops(producer)
            stack.extend(producer.inputs)
        node.meta['flops'] = flops
        stats['flops feeding writes'] += flops


def is_one(value) -> bool:
    return isinstance(value, Literal) and np.all(np.asarray(value.val) == 1)


@brainstate.passes.register('drop-multiply-by-one')
class DropMultiplyByOne(brainstate.passes.Pass):
    """Replace ``x * 1`` (and ``1 * x``) by ``x``."""

    def run(self, graph, stats):
        for node in graph.nodes:
            for body in node.subgraphs:  # every pass recurses into regions itself
                self.run(body, stats)
            if node.kind != 'primitive' or node.name != 'mul':
                continue
            left, right = node.inputs
            keep = left if is_one(right) else right if is_one(left) else None
            if keep is None or keep.aval.shape != node.outputs[0].aval.shape or \
                    keep.aval.dtype != node.outputs[0].aval.dtype:
                continue  # a broadcasting or casting multiply is not a no-op
            node.outputs[0].replace_all_uses_with(keep)
            graph.erase_node(node)
            stats['multiplies removed'] += 1


class Layer(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.w = brainstate.ParamState(jnp.ones((8, 8)) * 0.1)
        self.h = brainstate.HiddenState(jnp.zeros(8))
        self.total = brainstate.LongTermState(jnp.zeros(()))


layer = Layer()


def step(x):
    layer.h.value = jnp.tanh(x @ layer.w.value + layer.h.value) * 1.0
    layer.total.value = layer.total.value + layer.h.value.sum()
    return layer.h.value


def main():
    pipeline = 'hoist-states,drop-multiply-by-one,dce,state-flops'
    manager = brainstate.passes.PassManager(pipeline)
    graph = manager.run(brainstate.ir.trace(step, jnp.ones(8)))
    print(graph)
    print(manager.report())
    jitted = brainstate.transform.jit(step, passes=pipeline)
    print('result:', jitted(jnp.ones(8)))


if __name__ == '__main__':
    main()
