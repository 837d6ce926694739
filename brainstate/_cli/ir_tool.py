"""brainstate-ir: trace a step function and show its state IR before and after each pass.

    brainstate-ir examples/quickstart.py:step --args 'f32[3]'
    brainstate-ir replay REPRODUCER_FILE [--import my_passes.py]   (see brainstate/_cli/replay.py)
    brainstate-ir model.py:train_step --args 'f32[128,784]' 'i32[128]' --passes hoist-states,dce
    brainstate-ir model.py:train_step --args 'f32[128,784]' 'i32[128]' --dot step.dot --table
    brainstate-ir model.py:train_step --args 'f32[128,784]' 'i32[128]' --show final
    brainstate-ir model.py:simulate --args 'f32[1000,100]' --svg sim.svg --before --unfold
    brainstate-ir model.py:train_step --args 'f32[128,784]' 'i32[128]' --pack   (packed states)

The file is imported as a module (its top-level code runs, so it can build the model); the
function may be a plain function or a ``brainstate.transform.jit`` one.

This module imports neither JAX nor brainstate at import time: ``--help`` and argument errors
answer at once, and the console script (``brainstate_cli.py``) loads it without importing the
brainstate package. JAX is imported only when a function is traced.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys

_TYPE = re.compile(r'^\s*([a-z]+[0-9]*)\[([0-9,\s]*)\]\s*$')
_DTYPES = {'f16': 'float16', 'bf16': 'bfloat16', 'f32': 'float32', 'f64': 'float64',
           'i8': 'int8', 'i16': 'int16', 'i32': 'int32', 'i64': 'int64', 'u8': 'uint8',
           'u32': 'uint32', 'bool': 'bool', 'c64': 'complex64'}



def _replay(argv) -> int:
    """``brainstate-ir replay FILE``: run a pass reproducer again (brainstate/_cli/replay.py)."""
    from brainstate._cli.replay import main as replay
    return replay(argv)


# Subcommands besides the default one (trace and show a step): name -> main(argv) -> exit code.
# ``brainstate-ir NAME ...`` runs SUBCOMMANDS[NAME](the remaining arguments). Each imports what
# it needs when it runs (this module is loaded without the brainstate package: see the top).
SUBCOMMANDS: dict = {'replay': _replay}


class ArgType:
    """An argument type parsed from ``dtype[shape]``, without importing JAX (see ``spec``)."""

    def __init__(self, text: str, shape: tuple, dtype: str):
        self.text, self.shape, self.dtype = text, shape, dtype

    def spec(self):
        """The ``jax.ShapeDtypeStruct`` to trace with."""
        import jax
        import numpy as np
        return jax.ShapeDtypeStruct(self.shape, np.dtype(self.dtype))

    def __repr__(self):
        return self.text


def parse_type(text: str) -> ArgType:
    """``'f32[128,784]'`` -> shape ``(128, 784)``, dtype ``'float32'``; ``'f32[]'`` a scalar."""
    match = _TYPE.match(text)
    if not match or match.group(1) not in _DTYPES:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not an argument type. Write dtype[shape], e.g. f32[128,784], i32[] '
            f'(dtypes: {", ".join(_DTYPES)}).')
    dims = [int(d) for d in match.group(2).replace(' ', '').split(',') if d]
    return ArgType(text, tuple(dims), _DTYPES[match.group(1)])


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


def _states_touched(graph) -> list:
    """Every state a graph (and the regions in it) reads or writes, in program order."""
    states = {}
    for node in graph.nodes:
        if node.is_state_op:
            states.setdefault(node.state, None)
        for sub in node.subgraphs:
            states.update(dict.fromkeys(_states_touched(sub)))
    return list(states)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the default command (trace a step, show its IR through the passes)."""
    epilog = __doc__.split('\n', 2)[2].split('\n\nThis module')[0]
    if SUBCOMMANDS:
        epilog += '\n\nother commands: ' + ', '.join(
            f'brainstate-ir {name} --help' for name in sorted(SUBCOMMANDS))
    parser = argparse.ArgumentParser(
        prog='brainstate-ir', description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)
    parser.add_argument('target', help='path/to/file.py:function')
    parser.add_argument('--args', nargs='*', type=parse_type, default=[],
                        help="argument types, e.g. 'f32[128,784]' 'i32[128]'")
    parser.add_argument('--passes', default=None,
                        help='the pipeline (default: brainstate\'s default pipeline)')
    parser.add_argument('--show', choices=['changed', 'each', 'final'], default='changed',
                        help='print the traced IR and the IR after every pass that changed it '
                             '(default), after every pass, or only the final IR')
    parser.add_argument('--diff', action='store_true',
                        help='print each pass as a diff against the IR before it')
    parser.add_argument('--table', action='store_true',
                        help='print the per-state table (where each state is read and written)')
    parser.add_argument('--dot', metavar='FILE', help='write the final IR as Graphviz DOT')
    parser.add_argument('--svg', metavar='FILE', help='draw the final IR (needs Graphviz)')
    parser.add_argument('--source', action='store_true', help='show source lines in the IR')
    parser.add_argument('--html', metavar='FILE',
                        help='write a self-contained HTML report: the IR after each pass, its '
                             'diff against the previous one, the state table and the picture')
    parser.add_argument('--before', action='store_true',
                        help='draw the IR as traced beside the final one in the --dot, --svg '
                             'and --html pictures')
    parser.add_argument('--pack', action='store_true',
                        help='pack the states the function touches into one buffer per dtype '
                             '(brainstate.pack_states) and show the pack-states pass (it runs '
                             'anyway when the file packs states itself)')
    parser.add_argument('--unfold', action='store_true',
                        help="draw a loop's progress-bar bookkeeping (pbar=) node by node in "
                             'the pictures, instead of as one box')
    return parser


def run(args: argparse.Namespace) -> int:
    """Trace ``args.target``, run the passes one by one and print what ``args`` asks for."""
    import brainstate

    fun = load_function(args.target)
    from brainstate.transform._arguments import ArgumentSpec
    from brainstate.transform._program import trace_program
    show = lambda g: g.format(source=args.source)
    previous = []

    stages = []  # for --html: (name, information, IR text) of each stage

    traced = []  # for --before: the graph as traced

    def print_traced(graph, new_states):
        if args.before:
            traced.append(graph.copy())
        if args.html:
            stages.append((f'{graph.name}: as traced', '', graph.format(source=args.source)))
        if args.show != 'final':
            print(f'// ===== {graph.name}: as traced =====')
            print(show(graph))
        previous.append(graph.copy() if args.diff else None)

    def print_pass(p, record, graph):
        if args.html:
            stages.append((f'after {p.name}', f'{record.seconds * 1e3:.2f} ms; '
                           f'{record.stats or "no counters"}', graph.format(source=args.source)))
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
    try:
        manager = brainstate.passes.PassManager(pipeline, verify=True, observer=print_pass)
    except brainstate.BrainStateError as error:  # a pass name not registered
        print(f'brainstate-ir: --passes: {error} (The target file may register its own.)',
              file=sys.stderr)
        return 2
    spec = ArgumentSpec(fun)
    sig = spec.signature(tuple(a.spec() for a in args.args), {})
    pack = None
    if args.pack:
        pack = brainstate.pack_states(_states_touched(
            trace_program(fun, spec, sig, lower=False).graph), name='pack')
        print(f'// {pack!r}')
        for state, reason in pack.skipped:
            print(f'// not packed: {state.label()} ({reason})')
    try:
        # While any pack exists (--pack, or the file packed states itself), the pack-states
        # pass reads and writes its states through their buffer, as jit does.
        from brainstate._state_pack import pack_analyses
        program = trace_program(fun, spec, sig, passes=manager, before_passes=print_traced,
                                analyses=pack_analyses())
    finally:
        if pack is not None:
            pack.unpack()  # (the states are the file's: leave them as they were)
    graph = program.graph
    picture = {'before': traced[0] if traced else None, 'fold_progress_bar': not args.unfold}
    if args.show == 'final':
        print('// ===== final =====')
        print(show(graph))
    if args.table:
        print('// ===== states =====')
        print(graph.state_table())
    if args.dot:
        with open(args.dot, 'w') as f:
            f.write(graph.to_dot(**picture))
        print(f'// wrote {args.dot}')
    if args.html:
        from brainstate.ir._html import Stage, html_report
        final = graph.format(source=args.source)
        if not stages or stages[-1][2] != final:
            stages.append(('final (as lowered)', '', final))
        with open(args.html, 'w') as f:
            f.write(html_report(f'brainstate-ir {args.target}', [Stage(*s) for s in stages],
                                graph, **picture))
        print(f'// wrote {args.html}')
    if args.svg:
        try:
            graph.to_svg(args.svg, **picture)
        except brainstate.BrainStateError as error:
            print(f'brainstate-ir: {error}', file=sys.stderr)
            return 1
        print(f'// wrote {args.svg}')
    return 0



def main(argv=None) -> int:
    """The ``brainstate-ir`` command: ``brainstate-ir [SUBCOMMAND] ARGS...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    return run(build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
