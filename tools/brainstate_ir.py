"""Trace a step function and print or draw its state IR before and after each pass.

Installed as the console script ``brainstate-ir``; this file runs the same tool from a checkout:

    python tools/brainstate_ir.py examples/quickstart.py:step --args 'f32[3]' --table
"""

import sys

from brainstate._cli.ir_tool import main

if __name__ == '__main__':
    sys.exit(main())
