"""Custom passes, written only against brainstate's public API (the one the built-in passes use).

    python examples/custom_passes.py

1. ``state-read-flops`` (an analysis): how many floating-point operations depend on each state's
   read, recorded in the read node's ``meta`` (so shown in the printed IR) and in the pass's
   counters.
2. ``drop-identity-arithmetic`` (a rewrite): ``x * 1`` and ``x + (-0.0)`` become ``x``.
3. Loop-invariant code motion out of a ``for_loop`` body, written with the region kinds'
   signature API, is in examples/licm_pass.py.

docs/writing-a-pass.md walks through them; tests/test_custom_pass_example.py checks that they
compute what ``passes=[]`` computes.
"""

import math

import jax.numpy as jnp
import numpy as np

import brainstate
from brainstate.ir import Literal

# -- 1. an analysis: the FLOPs that depend on each state's read ----------------------------------

ELEMENTWISE = {'add', 'sub', 'mul', 'div', 'neg', 'max', 'min', 'abs', 'tanh', 'exp', 'log',
               'sin', 'cos', 'logistic', 'pow', 'integer_pow', 'sqrt', 'rsqrt', 'log1p',
               'expm1'}


def node_flops(node) -> int:
    """A rough count for one primitive node: 2*M*N*K for a matmul, one per output element for
    elementwise math, one per input element for a reduction, nothing for data movement and
    integer arithmetic."""
    if node.kind != 'primitive' or not node.outputs:
        return 0
    if not jnp.issubdtype(node.outputs[0].aval.dtype, jnp.inexact):
        return 0  # integer and boolean arithmetic (indices, masks) is not floating-point
    size = math.prod(node.outputs[0].aval.shape)
    if node.name == 'dot_general':
        (contracting, _), _ = node.params['dimension_numbers']
        lhs = node.inputs[0].aval
        return 2 * size * math.prod(lhs.shape[d] for d in contracting)
    if node.name in ELEMENTWISE:
        return size
    if node.name.startswith('reduce_'):
        return math.prod(node.inputs[0].aval.shape)
    return 0


def region_flops(node) -> int:
    """The FLOPs of one execution of a region node: a loop's body times its trips, the costlier
    branch of a cond, one trip of a while loop (its trip count is not known)."""
    per_body = [sum(node_flops(n) + (region_flops(n) if n.kind == 'region' else 0)
                    for n in body.nodes) for body in node.subgraphs]
    if node.name == 'scan':
        return per_body[0] * node.params['length']
    if node.name == 'cond':
        return max(per_body, default=0)
    return sum(per_body)


def dependent_flops(read) -> int:
    """The FLOPs of every node whose operands depend, directly or not, on ``read``'s results
    (its forward slice in the read's graph). A region counts whole once any operand depends on
    the read: a conservative answer, exact per carry once you map operands to body inputs with
    the region kinds' signature API."""
    flops, seen, stack = 0, set(), [read]
    while stack:
        for user in stack.pop().users():
            if user not in seen:
                seen.add(user)
                flops += region_flops(user) if user.kind == 'region' else node_flops(user)
                stack.append(user)
    return flops


@brainstate.passes.register('state-read-flops')
def state_read_flops(graph, stats):
    """Count the floating-point operations that depend on each state's read (meta 'flops').

    Run it after hoist-states: every state is then read once, at the graph's entry, so the
    forward slice of a read is everything its value reaches.
    """
    for node in graph.walk():  # walk() descends into region bodies
        if node.kind == 'state_read':
            flops = dependent_flops(node)
            node.meta['flops'] = flops  # shown as `# flops=...` in print(graph)
            stats['flops depending on state reads'] += flops


# -- 2. a rewrite: x * 1 and x + (-0.0) are x -----------------------------------------------------

def is_constant(value, number, negative: bool | None = None) -> bool:
    """Whether ``value`` is a literal equal to ``number`` in every element (and, given
    ``negative``, with that sign bit: ``-0.0 == 0.0`` but only ``x + (-0.0)`` is always ``x``)."""
    if not isinstance(value, Literal):
        return False
    array = np.asarray(value.val)
    if not np.all(array == number):
        return False
    return negative is None or bool(np.all(np.signbit(array) == negative))


@brainstate.passes.register('drop-identity-arithmetic')
class DropIdentityArithmetic(brainstate.passes.Pass):
    """Replace ``x * 1`` and ``x + (-0.0)`` (either operand order) by ``x``.

    ``x + 0.0`` is kept: it turns ``-0.0`` into ``0.0``, so it is not the identity.
    """

    def run(self, graph, stats):
        for node in graph.nodes:  # a snapshot: erasing while iterating is fine
            for body in node.subgraphs:  # recurse into loop and branch bodies
                self.run(body, stats)
            kept = self.identity_operand(node)
            if kept is None:
                continue
            result = node.outputs[0]
            if kept.aval.shape != result.aval.shape or kept.aval.dtype != result.aval.dtype:
                continue  # a broadcasting or casting operation is not a no-op
            # Every use of the result takes `kept`, and the node goes (types checked first).
            graph.replace_node(node, [kept])
            stats[f'{node.name} removed'] += 1

    @staticmethod
    def identity_operand(node):
        """The operand ``node`` returns unchanged, or None."""
        if node.kind != 'primitive' or len(node.inputs) != 2:
            return None
        if node.name == 'mul':
            neutral = lambda v: is_constant(v, 1)
        elif node.name == 'add':
            neutral = lambda v: is_constant(v, 0, negative=True)
        else:
            return None
        left, right = node.inputs
        if neutral(right):
            return left
        if neutral(left):
            return right
        return None


# -- 3. loop-invariant code motion: see examples/licm_pass.py ------------------------------------


# -- a model to run them on ----------------------------------------------------------------------

class Layer(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.w = brainstate.ParamState(jnp.ones((8, 8)) * 0.1)
        self.h = brainstate.HiddenState(jnp.zeros(8))
        self.total = brainstate.LongTermState(jnp.zeros(()))


layer = Layer()


def step(x):
    h = jnp.tanh(x @ layer.w.value + layer.h.value) * 1.0

    def accumulate(i):
        layer.total.value = layer.total.value + h[i] + (-0.0)

    brainstate.transform.for_loop(accumulate, jnp.arange(8))
    layer.h.value = h
    return h + (-0.0)


PIPELINE = 'hoist-states,drop-identity-arithmetic,dce,state-read-flops'


def main():
    manager = brainstate.passes.PassManager(PIPELINE, verify=True)
    graph = manager.run(brainstate.ir.trace(step, jnp.ones(8)))
    print(graph)
    print(manager.report())
    jitted = brainstate.transform.jit(step, passes=PIPELINE)
    print('result:', jitted(jnp.ones(8)))


if __name__ == '__main__':
    main()
