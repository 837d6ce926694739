"""brainstate/_compat.py: the JAX-version differences, checked on whichever JAX is installed."""

import jax
import jax.extend.core as jex_core
import jax.numpy as jnp
import numpy as np

import brainstate
from brainstate import _compat


def test_closed_call_name_is_the_primitives_name_on_this_jax():
    name = jex_core.primitives.closed_call_p.name
    assert _compat.CLOSED_CALL_NAME == name
    assert name in ('closed_call', 'eval_jaxpr')  # 'eval_jaxpr' from JAX 0.12


def test_a_call_of_a_closed_jaxpr_is_inlined_into_the_state_ir():
    inner = jax.make_jaxpr(lambda x: jnp.sin(x) * 2.0)(1.0)
    outer = jax.make_jaxpr(jnp.cos)(1.0)  # its one equation is replaced by a call of `inner`
    call = jex_core.new_jaxpr_eqn(list(outer.jaxpr.invars), list(outer.jaxpr.outvars),
                                  jex_core.primitives.closed_call_p, {'call_jaxpr': inner},
                                  inner.effects)
    closed = jex_core.ClosedJaxpr(outer.jaxpr.replace(eqns=[call]), outer.consts)
    graph = brainstate.ir.graph_from_jaxpr(closed)
    names = [node.name for node in graph.walk() if node.kind == 'primitive']
    assert 'sin' in names and _compat.CLOSED_CALL_NAME not in names, names
    lowered = brainstate.ir.lower_to_jaxpr(brainstate.passes.hoist_states(graph)).closed_jaxpr
    (out,) = jex_core.jaxpr_as_fun(lowered)(jnp.float32(0.5))
    np.testing.assert_allclose(out, np.sin(0.5) * 2.0, rtol=1e-6)


def test_jax_is_in_the_supported_range():
    major, minor = (int(p) for p in jax.__version__.split('.')[:2])
    assert (0, 10) <= (major, minor) < (0, 13), jax.__version__
