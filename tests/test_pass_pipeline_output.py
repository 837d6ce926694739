"""What the default pass pipeline makes of a few representative graphs, as printed IR.

A change that only makes the passes faster must leave these texts exactly as they are: the same
nodes, in the same order, with the same names. The graphs: the generated benchmark graph of
``tools/bench_passes.py`` (every pass has work there), a traced loop with a branch touching
states (hoist-states on regions, cse and dead writes inside a body), and a traced two-layer MLP
train step (a real program's gradient). The large generated graph is compared by digest.
"""

import hashlib
import textwrap

import jax
import jax.numpy as jnp

import brainstate
from brainstate import ir, passes
from brainstate.transform import cond, for_loop

from _project_files import load_project_file  # (tests/)


def _generated_graph(n_nodes):
    return load_project_file('tools/bench_passes.py', '_bench_passes').generated_graph(n_nodes)


def _optimized(graph):
    manager = passes.PassManager(passes.DEFAULT_PIPELINE, verify=True, capture_reproducer=False)
    manager.run(graph)
    return graph.format(), manager.statistics()


GENERATED = textwrap.dedent('''\
    graph generated(%0:f32[16]) {
      %1:f32[16] = state_read @s0    # donate
      %2:f32[16] = state_read @s1    # donate
      %3:f32[16] = sin %1
      %4:f32[16] = add %3 %3
      %5:f32[16] = mul %4 %0
      %6:f32[16] = mul %5 2.0:f32[]
      %7:f32[16] = cos %2
      %8:f32[16] = add %7 %7
      %9:f32[16] = mul %8 %6
      %10:f32[16] = mul %9 2.0:f32[]
      state_write @s0 %6
      state_write @s1 %10
      return %10
    }
    ''')


def test_generated_graph():
    text, stats = _optimized(_generated_graph(20))
    assert text == GENERATED.rstrip('\n'), text
    assert stats['fold-constants']['operations folded'] == 2
    assert stats['cse']['nodes merged'] == 2
    assert stats['dce']['nodes removed'] == 2


def test_large_generated_graph_by_digest():
    text, stats = _optimized(_generated_graph(3_000))
    assert text.count('\n') == 1_402
    assert hashlib.sha256(text.encode()).hexdigest() == (
        '776460138e9e6919b82fdbb1b614a86e0883b1fa88f4ba608e3ad5e3478494b8'), text[:2000]
    assert (stats['fold-constants']['operations folded'], stats['cse']['nodes merged'],
            stats['dce']['nodes removed']) == (300, 300, 300)


class Net(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.V = brainstate.HiddenState(jnp.zeros(4))
        self.w = brainstate.ParamState(jnp.ones(4))
        self.count = brainstate.ShortTermState(jnp.zeros((), jnp.int32))


REGIONS = textwrap.dedent('''\
    graph run(%0:f32[3,4]) {
      %1:f32[4] = state_read @Net.w    # read_only
      %2:f32[4] = state_read @Net.V    # donate
      %3:i32[] = state_read @Net.count    # donate
      %4:f32[4] %5:i32[] %6:f32[3,4] = scan[length=3 num_carry=2 num_consts=1 reverse=False unroll=1] %1 %2 %3 %0 {
        step(%7:f32[4] %8:f32[4] %9:i32[] %10:f32[4]) {
          %11:f32[4] = tanh %8
          %12:f32[4] = mul %11 0.8999999761581421:f32[]
          %13:f32[4] = mul %11 %10
          %14:f32[4] = mul %13 %7
          %15:f32[4] = add %12 %14
          %16:f32[] = reduce_sum[axes=(0,)] %15
          %17:bool[] = gt %16 1.0:f32[]
          %18:i32[] = convert_element_type[new_dtype=int32 weak_type=False] %17
          %19:i32[] = cond %18 %9 {
            <lambda>(%20:i32[]) {
              return %20
            }
            fire(%21:i32[]) {
              %22:i32[] = add %21 1:i32[]
              return %22
            }
          }
          return %15 %19 %15
        }
      }
      state_write @Net.V %4
      state_write @Net.count %5
      return %6
    }
    ''')


def test_loop_with_branch_and_states():
    net = Net()

    def run(xs):
        def step(x):
            a = jnp.tanh(net.V.value)
            b = jnp.tanh(net.V.value)      # the same as a (cse)
            unused = jnp.exp(x)            # dead (dce)
            net.V.value = x                # overwritten before any read (dead-writes)
            net.V.value = a * 0.9 + b * x * net.w.value

            def fire():
                net.count.value = net.count.value + 1

            cond(net.V.value.sum() > 1., fire, lambda: None)
            return net.V.value

        return for_loop(step, xs)

    text, _ = _optimized(ir.trace(run, jnp.ones((3, 4))))
    assert text == REGIONS.rstrip('\n'), text


class MLP(brainstate.Module):
    def __init__(self, depth=2, width=3):
        super().__init__()
        self.layers = [brainstate.ParamState({'w': jnp.full((width, width), 0.5),
                                               'b': jnp.zeros(width)})
                       for _ in range(depth)]

    def __call__(self, x):
        for layer in self.layers:
            x = jnp.sin(x @ layer.value['w'] + layer.value['b'])
        return x


MLP_STEP = textwrap.dedent('''\
    graph train_step(%0:f32[2,3], %1:f32[2,3]) {
      %2:f32[3] %3:f32[3,3] = state_read @MLP.layers.0{['b'] ['w']}    # donate
      %4:f32[3] %5:f32[3,3] = state_read @MLP.layers.1{['b'] ['w']}    # donate
      %6:f32[2,3] = dot_general[dimension_numbers=(((1,), (0,)), ((), ())) preferred_element_type=float32] %0 %3
      %7:f32[1,3] = broadcast_in_dim[broadcast_dimensions=(1,) shape=(1, 3)] %2
      %8:f32[2,3] = add %6 %7
      %9:f32[2,3] = sin %8
      %10:f32[2,3] = cos %8
      %11:f32[2,3] = dot_general[dimension_numbers=(((1,), (0,)), ((), ())) preferred_element_type=float32] %9 %5
      %12:f32[1,3] = broadcast_in_dim[broadcast_dimensions=(1,) shape=(1, 3)] %4
      %13:f32[2,3] = add %11 %12
      %14:f32[2,3] = sin %13
      %15:f32[2,3] = cos %13
      %16:f32[2,3] = sub %14 %1
      %17:f32[2,3] = mul 2.0:f32[] %16
      %18:f32[2,3] = broadcast_in_dim[broadcast_dimensions=() shape=(2, 3)] 0.1666666716337204:f32[]
      %19:f32[2,3] = mul %18 %17
      %20:f32[2,3] = mul %19 %15
      %21:f32[3] = reduce_sum[axes=(0,)] %20
      %22:f32[1,3] = reshape[new_sizes=(1, 3)] %21
      %23:f32[3] = reduce_sum[axes=(0,)] %22
      %24:f32[3,3] = dot_general[dimension_numbers=(((0,), (0,)), ((), ())) preferred_element_type=float32] %20 %9
      %25:f32[3,3] = transpose[permutation=(1, 0)] %24
      %26:f32[2,3] = dot_general[dimension_numbers=(((1,), (1,)), ((), ())) preferred_element_type=float32] %20 %5
      %27:f32[2,3] = mul %26 %10
      %28:f32[3] = reduce_sum[axes=(0,)] %27
      %29:f32[1,3] = reshape[new_sizes=(1, 3)] %28
      %30:f32[3] = reduce_sum[axes=(0,)] %29
      %31:f32[3,3] = dot_general[dimension_numbers=(((0,), (0,)), ((), ())) preferred_element_type=float32] %27 %0
      %32:f32[3,3] = transpose[permutation=(1, 0)] %31
      %33:f32[3] = mul 0.009999999776482582:f32[] %30
      %34:f32[3] = sub %2 %33
      %35:f32[3,3] = mul 0.009999999776482582:f32[] %32
      %36:f32[3,3] = sub %3 %35
      %37:f32[3] = mul 0.009999999776482582:f32[] %23
      %38:f32[3] = sub %4 %37
      %39:f32[3,3] = mul 0.009999999776482582:f32[] %25
      %40:f32[3,3] = sub %5 %39
      %41:f32[2,3] = dot_general[dimension_numbers=(((1,), (0,)), ((), ())) preferred_element_type=float32] %0 %36
      %42:f32[1,3] = broadcast_in_dim[broadcast_dimensions=(1,) shape=(1, 3)] %34
      %43:f32[2,3] = add %41 %42
      %44:f32[2,3] = sin %43
      %45:f32[2,3] = dot_general[dimension_numbers=(((1,), (0,)), ((), ())) preferred_element_type=float32] %44 %40
      %46:f32[1,3] = broadcast_in_dim[broadcast_dimensions=(1,) shape=(1, 3)] %38
      %47:f32[2,3] = add %45 %46
      %48:f32[2,3] = sin %47
      %49:f32[2,3] = sub %48 %1
      %50:f32[2,3] = integer_pow[y=2] %49
      %51:f32[] = reduce_sum[axes=(0, 1)] %50
      %52:f32[] = div %51 6.0:f32[]
      state_write @MLP.layers.0{['b'] ['w']} %34 %36
      state_write @MLP.layers.1{['b'] ['w']} %38 %40
      return %52
    }
    ''')


def test_mlp_train_step():
    model = MLP()
    params = model.states(brainstate.ParamState)

    def loss_fn(x, y):
        return jnp.mean((model(x) - y) ** 2)

    def train_step(x, y):
        grads = brainstate.transform.grad(loss_fn, params)(x, y)
        for key in params:
            params[key].value = jax.tree.map(lambda p, g: p - 0.01 * g, params[key].value,
                                             grads[key])
        return loss_fn(x, y)

    x = jnp.ones((2, 3))
    text, _ = _optimized(ir.trace(train_step, x, x))
    assert text == MLP_STEP.rstrip('\n'), text
