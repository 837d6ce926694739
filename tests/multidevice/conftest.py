"""Tests that need 8 devices. They run in one subprocess that tests/test_sharding.py starts with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` and ``BRAINSTATE_MULTIDEVICE=1`` (the
device count must be set before JAX starts), so the normal test command runs them. Collected in
any other session, they are left out.

Run them alone:
    XLA_FLAGS=--xla_force_host_platform_device_count=8 BRAINSTATE_MULTIDEVICE=1 \\
        python -m pytest tests/multidevice
"""

import os

if os.environ.get('BRAINSTATE_MULTIDEVICE') != '1':
    collect_ignore_glob = ['test_*.py']
