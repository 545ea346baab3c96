"""The Dockerfile, checked without a Docker engine: its inputs exist, it ends as a non-root
user with `metallb-py` as entry point, and the console script it installs runs both
components."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from metallb_py.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continuation"
    return out


def test_base_image_is_slim_python():
    args = {r.split("=", 1)[0]: r.split("=", 1)[1] for i, r in instructions() if i == "ARG"}
    froms = [r for i, r in instructions() if i == "FROM"]
    assert froms, "no FROM"
    for f in froms:
        image = f.split()[0]
        image = args.get(image.strip("${}"), image)
        assert image.startswith("python:3.11") and "slim" in image, image


def test_copy_sources_exist_and_are_not_dockerignored():
    kept = [
        line[1:].strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copies = [r for i, r in instructions() if i == "COPY"]
    assert copies
    for args in copies:
        words = args.split()
        if any(w.startswith("--from=") for w in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        assert sources
        for src in sources:
            assert (ROOT / src).exists(), f"COPY source {src} does not exist"
            assert src.rstrip("/") in kept, f"COPY source {src} is excluded by .dockerignore"


def test_runs_as_non_root_by_default():
    users = [r for i, r in instructions() if i == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root")
    # The controller's pod securityContext uses the same uid.
    assert user == "65534"


def test_entrypoint_is_the_console_script():
    entry = [r for i, r in instructions() if i == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["metallb-py"]
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    scripts = cfg["options.entry_points"]["console_scripts"]
    assert "metallb-py = metallb_py.cli:main" in scripts


@pytest.mark.parametrize("component", ["controller", "speaker"])
def test_console_script_runs_component(component: str):
    if component not in SUBCOMMANDS:
        pytest.skip(f"`metallb-py {component}` is not registered yet")
    exe = shutil.which("metallb-py")
    if exe is None:
        pytest.skip("the package is not installed (`pip install -e .`)")
    out = subprocess.run(
        [exe, component, "--help"], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    for flag in ("--port", "--config", "--log-level"):
        assert flag in out.stdout
