"""Example pass 3: loop-invariant code motion out of a ``for_loop`` body.

    python examples/licm_pass.py

Written only against the public API: ``brainstate.ir.region_kind(node).signature(node)`` says
which body inputs are the loop's consts (the same value in every iteration), and
``kind.insert_operand`` gives the loop a new const. A computation in the body whose operands
are all consts, literals or other such computations gives the same value in every iteration:
the pass computes it once before the loop and passes the result in as a new const. The dce pass
then drops the consts nothing in the body uses any more.

docs/writing-a-pass.md (example 3) walks through it.
"""

import jax.numpy as jnp

import brainstate
from brainstate.ir import Literal, region_kind


@brainstate.passes.register('loop-invariant-code-motion')
class LoopInvariantCodeMotion(brainstate.passes.Pass):
    """Compute the parts of a loop body that are the same in every iteration once, before the
    loop."""

    def run(self, graph, stats):
        for node in graph.nodes:
            for body in node.subgraphs:  # inner loops first: what leaves them may leave us too
                self.run(body, stats)
            if node.kind == 'region' and node.op == 'scan':  # for_loop and scan
                self.hoist_out_of(graph, node, stats)

    def hoist_out_of(self, graph, loop, stats):
        kind = region_kind(loop)
        sig = kind.signature(loop)
        body = sig.bodies[0]
        # body value -> the outer value it equals in every iteration: the consts to begin with
        outer = {}
        consts = body.input_groups['consts']
        for position in range(consts.start, consts.stop):
            outer[body.graph.inputs[position]] = loop.inputs[body.input_operands[position]]
        for node in body.graph.nodes:
            if node.kind != 'primitive' or node.has_effect or not node.outputs:
                continue
            if not all(isinstance(v, Literal) or v in outer for v in node.inputs):
                continue
            # Compute it once, just before the loop, on the outer values ...
            with graph.inserting_before(loop):
                moved = graph.create_node(
                    'primitive', op=node.op, inputs=[outer.get(v, v) for v in node.inputs],
                    output_avals=[v.aval for v in node.outputs], params=node.params,
                    source_info=node.source_info, extra=node.extra)
            # ... and give the loop its results as new consts.
            for old, new in zip(node.outputs, moved.outputs):
                inner, = kind.insert_operand(loop, 'consts', new, name='invariant')
                old.replace_all_uses_with(inner)
                outer[inner] = new
            body.graph.erase_node(node)
            stats['operations hoisted out of loops'] += 1


class Neuron(brainstate.Module):
    def __init__(self, n=4):
        super().__init__()
        self.tau = brainstate.ParamState(jnp.linspace(5., 20., n))
        self.V = brainstate.HiddenState(jnp.zeros(n))


neuron = Neuron()


def simulate(currents):
    def step(current):
        decay = jnp.exp(-0.1 / neuron.tau.value)  # the same in every iteration
        neuron.V.value = neuron.V.value * decay + current * (1. - decay)
        return neuron.V.value

    return brainstate.transform.for_loop(step, currents)


PIPELINE = 'hoist-states,loop-invariant-code-motion,dce'


def main():
    currents = jnp.ones((100, 4))
    manager = brainstate.passes.PassManager(PIPELINE, verify=True)
    graph = manager.run(brainstate.ir.trace(simulate, currents))
    print(graph)
    print(manager.report())
    print('V after 100 steps:', brainstate.transform.jit(simulate, passes=PIPELINE)(currents)[-1])


if __name__ == '__main__':
    main()
