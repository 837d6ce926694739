"""brainstate-ir: trace a step function and show its state IR before and after each pass.

    brainstate-ir examples/quickstart.py:step --args 'f32[3]'
    brainstate-ir replay REPRODUCER_FILE [--import my_passes.py]   (see brainstate/_cli/replay.py)
    brainstate-ir model.py:train_step --args 'f32[128,784]' 'i32[128]' --passes hoist-states,dce
    brainstate-ir model.py:train_step --args 'f32[128,784]' 'i32[128]' --dot step.dot --table

The file is imported as a module (its top-level code runs, so it can build the model); the
function may be a plain function or a ``brainstate.transform.jit`` one.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys

import jax
import numpy as np

_TYPE = re.compile(r'^\s*([a-z]+[0-9]*)\[([0-9,\s]*)\]\s*$')
_DTYPES = {'f16': 'float16', 'bf16': 'bfloat16', 'f32': 'float32', 'f64': 'float64',
           'i8': 'int8', 'i16': 'int16', 'i32': 'int32', 'i64': 'int64', 'u8': 'uint8',
           'u32': 'uint32', 'bool': 'bool', 'c64': 'complex64'}


def parse_type(text: str) -> jax.ShapeDtypeStruct:
    """``'f32[128,784]'`` -> ``ShapeDtypeStruct((128, 784), float32)``; ``'f32[]'`` a scalar."""
    match = _TYPE.match(text)
    if not match or match.group(1) not in _DTYPES:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not an argument type. Write dtype[shape], e.g. f32[128,784], i32[] '
            f'(dtypes: {", ".join(_DTYPES)}).')
    dims = [int(d) for d in match.group(2).replace(' ', '').split(',') if d]
    return jax.ShapeDtypeStruct(tuple(dims), np.dtype(_DTYPES[match.group(1)]))


def load_function(target: str):
    """``path/to/file.py:name`` (or ``:obj.attr``) -> the Python function to trace."""
    path, sep, name = target.rpartition(':')
    if not sep or not path or not name:
        raise SystemExit(f'brainstate-ir: expected path/to/file.py:function, got {target!r}.')
    if not os.path.exists(path):
        raise SystemExit(f'brainstate-ir: no such file: {path}')
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec = importlib.util.spec_from_file_location('_brainstate_ir_target', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    obj = module
    for part in name.split('.'):
        if not hasattr(obj, part):
            raise SystemExit(f'brainstate-ir: {path} has no attribute {name!r}.')
        obj = getattr(obj, part)
    return getattr(obj, 'fun', obj)  # a brainstate jit: trace the function it wraps


def main(argv=None) -> int:
    import brainstate
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['replay']:  # replay a pass reproducer
        from .replay import main as replay
        return replay(argv[1:])
    parser = argparse.ArgumentParser(
        prog='brainstate-ir', description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('target', help='path/to/file.py:function')
    parser.add_argument('--args', nargs='*', type=parse_type, default=[],
                        help="argument types, e.g. 'f32[128,784]' 'i32[128]'")
    parser.add_argument('--passes', default=None,
                        help='the pipeline (default: brainstate\'s default pipeline)')
    parser.add_argument('--show', choices=['changed', 'each', 'final'], default='changed',
                        help='print the IR after every pass that changed it (default), after '
                             'every pass, or only the final IR')
    parser.add_argument('--diff', action='store_true',
                        help='print each pass as a diff against the IR before it')
    parser.add_argument('--table', action='store_true', help='print the per-state table')
    parser.add_argument('--dot', metavar='FILE', help='write the final IR as Graphviz DOT')
    parser.add_argument('--svg', metavar='FILE', help='draw the final IR (needs Graphviz)')
    parser.add_argument('--source', action='store_true', help='show source lines in the IR')
    args = parser.parse_args(argv)

    fun = load_function(args.target)
    from brainstate.transform._arguments import ArgumentSpec
    from brainstate.transform._program import trace_program
    show = lambda g: g.format(source=args.source)
    previous = []

    def print_traced(graph, new_states):
        if args.show != 'final':
            print(f'// ===== {graph.name}: as traced =====')
            print(show(graph))
        previous.append(graph.copy() if args.diff else None)

    def print_pass(p, record, graph):
        if args.show == 'each' or (args.show == 'changed' and record.changed):
            print(f'// ===== after {p.name} ({record.seconds * 1e3:.2f} ms; '
                  f'{record.stats or "no counters"}'
                  f'{"" if record.changed else "; unchanged"}) =====')
            print(previous[-1].diff(graph) if args.diff else show(graph))
        if args.diff:
            previous.append(graph.copy())

    # The one pipeline (brainstate/transform/_program.py), as jit runs it: trace, the passes
    # (with hoist-states if the pipeline lacks it), lowering.
    pipeline = args.passes if args.passes is not None else \
        brainstate.passes.get_default_pipeline()
    manager = brainstate.passes.PassManager(pipeline, verify=True, observer=print_pass)
    spec = ArgumentSpec(fun)
    program = trace_program(fun, spec, spec.signature(tuple(args.args), {}), passes=manager,
                            before_passes=print_traced)
    graph = program.graph
    if args.show == 'final':
        print('// ===== final =====')
        print(show(graph))
    if args.table:
        print('// ===== states =====')
        print(graph.state_table())
    if args.dot:
        with open(args.dot, 'w') as f:
            f.write(graph.to_dot())
        print(f'// wrote {args.dot}')
    if args.svg:
        try:
            graph.to_svg(args.svg)
        except brainstate.BrainStateError as error:
            print(f'brainstate-ir: {error}', file=sys.stderr)
            return 1
        print(f'// wrote {args.svg}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
