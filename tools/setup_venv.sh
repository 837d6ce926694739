#!/bin/sh
# Make .venv in the repository root and install brainstate into it (editable), with the extras
# named as arguments:   sh tools/setup_venv.sh            (the library)
#                       sh tools/setup_venv.sh test        (and the test tools)
#                       sh tools/setup_venv.sh test docs progress
# Where python3 or its venv module is missing (a fresh Debian/Ubuntu), installs python3 and
# python3-venv with apt-get first, as root or through sudo. PYTHON=python3.12 picks another
# interpreter (3.11 or newer); VENV=.venv-312 another folder.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
extras=$(echo "$*" | tr ' ' ',')

say() { echo "setup_venv: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  command -v apt-get >/dev/null 2>&1 || {
    say "needs $PYTHON (Python 3.11 or newer) with its venv module; install it and rerun."; exit 1; }
  say "installing python3 and python3-venv with apt-get"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
}

command -v "$PYTHON" >/dev/null 2>&1 || apt_install
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  say "brainstate needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)."
  say "Install a newer one and rerun with PYTHON=python3.12 (for example)."; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  # Debian and Ubuntu ship venv's pip bootstrap apart (python3-venv): without it this fails.
  if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    apt_install
    "$PYTHON" -m venv "$VENV"
  fi
fi
say "installing brainstate${extras:+[$extras]} into $VENV (Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'))"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
