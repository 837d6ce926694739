"""Launcher of the ``brainstate-ir`` console script (see ``brainstate/_cli/ir_tool.py``).

Importing the ``brainstate`` package imports JAX, which takes seconds. This top-level module
loads the tool's file without importing the package, so ``brainstate-ir --help`` and argument
errors answer at once; the tool imports brainstate (and JAX) only when it traces a function.
"""

import importlib.util
import os
import sys

__all__ = ['main']


def _ir_tool():
    if 'brainstate' in sys.modules:  # already paid for: the ordinary module
        from brainstate._cli import ir_tool
        return ir_tool
    package = importlib.util.find_spec('brainstate')
    if package is None or not package.submodule_search_locations:
        raise SystemExit('brainstate-ir: the brainstate package is not installed '
                         '(python -m pip install brainstate, or -e . in a checkout).')
    path = os.path.join(list(package.submodule_search_locations)[0], '_cli', 'ir_tool.py')
    spec = importlib.util.spec_from_file_location('_brainstate_ir_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    """Run ``brainstate-ir`` with ``argv`` (default: the command line); return its exit code."""
    return _ir_tool().main(argv)


if __name__ == '__main__':
    sys.exit(main())
