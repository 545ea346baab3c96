#!/usr/bin/env bash
# The whole test suite: lint, types, then every test (namespace tests need root).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy
# Property tests use fixed examples here (tests/conftest.py); plain `pytest` explores new ones.
HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}" python3 -m pytest "$@"
