"""Loading the project's scripts (tools/, examples/) as modules in tests."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_project_file(relative_path: str, module_name: str):
    """Execute ``ROOT/relative_path`` as a fresh module named ``module_name`` and return it
    (each call runs the file again: a file that registers passes registers them again)."""
    spec = importlib.util.spec_from_file_location(module_name,
                                                  os.path.join(ROOT, relative_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
