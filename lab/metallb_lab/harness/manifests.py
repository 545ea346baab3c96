"""`python -m metallb_lab.harness.manifests DIR`: regenerate the shipped manifests (`manifests/`)
from `metallb_py.addons.manifests`; a test fails when the files in the repository are stale."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metallb_py.addons.manifests import write_manifests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    for path in write_manifests(args.directory):
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
