"""brainstate-ir replay: run a pass reproducer again.

    brainstate-ir replay /tmp/brainstate-reproducer-my-pass-1234.txt
    brainstate-ir replay FILE --import my_passes.py      # register your own passes first
    brainstate-ir replay FILE --passes my-pass,dce       # another pipeline

A reproducer (written by the PassManager when a pass fails) holds the pipeline from the failing
pass on and the IR in its exact text form. Replay reads the IR back with
:func:`brainstate.ir.parse` (states become placeholders of the printed types), runs that
pipeline with verification after every pass, and prints the error again, or the final IR if
the failure did not reproduce. Exit status: 1 when the failure reproduced, 0 when it did not,
2 when the replay could not start (an unreadable IR, a pass not registered: see --import).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
import tempfile
import traceback


def read_reproducer(text: str) -> tuple[str | None, str]:
    """``(pipeline, ir_text)`` of a reproducer's text: the passes from the failing one on (None
    if the header does not say) and the IR."""
    match = re.search(r'^// failing pass: .* \(replay: (.*)\)$', text, re.MULTILINE)
    pipeline = match.group(1) if match else None
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith('graph '):
            return pipeline, '\n'.join(lines[index:])
    raise SystemExit('brainstate-ir replay: the file holds no IR (no line starting with '
                     '"graph ").')


def _import(target: str):
    """Import a module by name or a .py file by path (to register its passes)."""
    if target.endswith('.py') or os.sep in target:
        if not os.path.exists(target):
            raise SystemExit(f'brainstate-ir replay: no such file: {target}')
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        name = os.path.splitext(os.path.basename(target))[0]
        spec = importlib.util.spec_from_file_location(name, target)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def main(argv=None) -> int:
    import brainstate
    parser = argparse.ArgumentParser(
        prog='brainstate-ir replay', description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('file', help='a reproducer file written by a failing pass')
    parser.add_argument('--passes', default=None,
                        help='the pipeline to run (default: the one the reproducer names)')
    parser.add_argument('--import', dest='imports', action='append', default=[],
                        metavar='MODULE_OR_FILE',
                        help='import this module or .py file first (it registers your passes); '
                             'may be repeated')
    parser.add_argument('--exact', action='store_true',
                        help='print the final IR in the exact form (every param)')
    args = parser.parse_args(argv)

    for target in args.imports:
        _import(target)
    with open(args.file) as f:
        pipeline, text = read_reproducer(f.read())
    pipeline = args.passes if args.passes is not None else pipeline
    if not pipeline:
        raise SystemExit('brainstate-ir replay: the reproducer names no pipeline; give one with '
                         '--passes.')
    # What stops the replay before any pass runs is not the failure reproducing: a message and
    # exit status 2 (1 means "reproduced").
    try:
        graph = brainstate.ir.parse(text)
    except brainstate.ir.IRParseError as error:
        print(f'brainstate-ir replay: cannot read the IR of {args.file}: {error}',
              file=sys.stderr)
        return 2
    print(f'// replaying {pipeline} on graph {graph.name} ({len(graph)} nodes)')
    for note in graph.meta.get('parse_notes', ()):  # e.g. a large constant read as zeros
        print(f'// note: {note}')
    with tempfile.TemporaryDirectory() as scratch:  # a failure's new reproducer is not kept
        try:
            manager = brainstate.passes.PassManager(pipeline, verify=True,
                                                    capture_reproducer=False,
                                                    reproducer_dir=scratch)
        except brainstate.BrainStateError as error:  # a pass name not registered here
            print(f'brainstate-ir replay: {error} A pass of your own is registered by the '
                  f'file that defines it: give it with --import FILE.py (or a module name).',
                  file=sys.stderr)
            return 2
        try:
            manager.run(graph)
        except Exception as error:
            print('// the failure reproduced:', file=sys.stderr)
            traceback.print_exception(error, file=sys.stderr)
            return 1
    print(graph.format(exact=args.exact))
    print(manager.report())
    print('// the pipeline ran without error: the failure did not reproduce.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
