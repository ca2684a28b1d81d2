#!/bin/sh
# Sets up everything the tests need (system tools as root, .venv) and runs the whole test suite.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-test-deps.sh
sh scripts/setup-venv.sh test
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
