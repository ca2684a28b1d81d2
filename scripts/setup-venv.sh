#!/bin/sh
# Creates .venv (Python 3.11+) and installs smbwatch into it; with "test", also what the tests need.
# The install compiles the packet path with mypyc (setup.py) when a C compiler and the Python
# headers are there, and is pure Python otherwise. It is a regular install, not an editable one:
# rerun this script after changing src/ (or see CONTRIBUTING.md for an editable, pure install).
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "smbwatch needs Python 3.11 or newer as '$PYTHON' (set PYTHON=...)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
            "$PYTHON" -m venv .venv
        else
            echo "cannot create a virtual environment: install python3-venv (as root)" >&2
            exit 1
        fi
    fi
fi
# The build (a compile of a minute or two) is skipped when this very source is installed already:
# every file of the package counts (the rules' YAML too), by name and content.
extras=$([ "${1:-}" = "test" ] && echo "[test]" || echo "")
files=$(find src -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' | LC_ALL=C sort)
stamp=$( (echo "$files"; cat pyproject.toml setup.py $files) | sha256sum | cut -c1-16)
stamp="$stamp$extras"
if [ "$(cat .venv/smbwatch-installed 2>/dev/null)" != "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # setuptools copies the package through build/lib and never removes from it: a file deleted
    # or renamed in src/ would still be installed (the compiler's own cache in build/ is kept)
    rm -rf build/lib.*/smbwatch
    .venv/bin/python -m pip install -q ".$extras"
    echo "$stamp" > .venv/smbwatch-installed
fi
.venv/bin/smbwatch --version
