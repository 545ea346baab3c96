#!/usr/bin/env bash
# The whole test suite: lint, types, then every test (namespace tests need root).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy
python3 -m pytest "$@"
