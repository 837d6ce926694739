"""Trace a step function and print or draw its state IR before and after each pass.

Installed as the console script ``brainstate-ir``; this file runs the same tool from a checkout:

    python tools/brainstate_ir.py examples/quickstart.py:step --args 'f32[3]' --table
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from brainstate_cli import main  # noqa: E402  (imports neither JAX nor brainstate for --help)

if __name__ == '__main__':
    sys.exit(main())
