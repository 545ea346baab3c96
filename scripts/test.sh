#!/usr/bin/env bash
# The whole test suite: lint, types, then every test (namespace tests need root).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy
# With Go on the machine the control plane is built by setup.sh, and the real-server tier must
# run (tests/realapi): a missing build fails instead of skipping.
if command -v go >/dev/null; then
  export METALLB_PY_REAL_API="${METALLB_PY_REAL_API:-required}"
fi
# Property tests use fixed examples here (tests/conftest.py); plain `pytest` explores new ones.
HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}" python3 -m pytest "$@"
