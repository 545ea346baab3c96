"""The product ships alone (issue 12): its wheel holds `metallb_py` and nothing of the lab or the
tests; the lab is its own distribution beside it, installed by the `lab` extra."""

from __future__ import annotations

import ast
import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("metallb_py", "lab", "setup.cfg", "setup.py", "pyproject.toml", "README.md")


def copy_sources(dest: Path) -> Path:
    """The packaging inputs of the working tree, without caches or build leftovers."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    return dest


def build_wheel(source: Path, out: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    src = copy_sources(tmp_path_factory.mktemp("src"))
    return {
        "product": build_wheel(src, tmp_path_factory.mktemp("product")),
        "lab": build_wheel(src / "lab", tmp_path_factory.mktemp("lab")),
    }


def test_product_wheel_holds_the_product_only(wheels: dict[str, Path]) -> None:
    names = zipfile.ZipFile(wheels["product"]).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"metallb_py"}
    for name in names:
        assert not name.startswith(("metallb_py/testing/", "metallb_py/lab/")), name
        # `python -m metallb_py` is the product CLI; no other package is a program.
        assert not name.endswith("__main__.py") or name == "metallb_py/__main__.py", name
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheels["product"]).read(metadata).decode()
    required = [line for line in text.splitlines() if line.startswith("Requires-Dist:")]
    plain = [r for r in required if "extra ==" not in r]
    # What the product imports, and nothing else (docs/DEVELOPING.md says why).
    assert sorted(r.split()[1].split(">")[0].split("=")[0].lower() for r in plain) == [
        "click",
        "kubernetes",
        "prometheus-client",
        "pyroute2",
        "pyyaml",
    ]
    assert any(r.startswith("Requires-Dist: metallb-py-lab @ file:") for r in required)


def test_lab_wheel_is_the_lab_only(wheels: dict[str, Path]) -> None:
    names = zipfile.ZipFile(wheels["lab"]).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"metallb_lab"}
    for part in ("apiserver/server.py", "netns.py", "routers.py", "harness/layer2.py", "cli.py"):
        assert f"metallb_lab/{part}" in names


def test_the_product_never_imports_the_lab() -> None:
    """Only `metallb-py lab` loads it, lazily, by name (metallb_py/cli/__init__.py)."""
    offenders = []
    for path in (ROOT / "metallb_py").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if any(n.split(".")[0] == "metallb_lab" for n in names):
                offenders.append(f"{path.relative_to(ROOT)}: {names}")
    assert offenders == []


def test_setup_cfg_names_the_product_package_only() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["options.packages.find"]["include"].split() == ["metallb_py*"]


@pytest.mark.slow
def test_clean_venv_product_alone_then_with_the_lab_extra(tmp_path: Path) -> None:
    """Acceptance: `pip install .` in a clean venv has no lab (and `metallb-py lab` says how to
    get it); `pip install '.[lab]'` brings `metallb-py lab demo` back."""
    src = copy_sources(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, cli = venv / "bin" / "python", venv / "bin" / "metallb-py"

    def pip(*args: str) -> None:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *args],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    pip(str(src))
    probe = subprocess.run(
        [str(python), "-c", "import metallb_lab"], capture_output=True, text=True, check=False
    )
    assert probe.returncode == 1 and "No module named 'metallb_lab'" in probe.stderr
    lab = subprocess.run([str(cli), "lab", "demo"], capture_output=True, text=True, check=False)
    assert lab.returncode == 2
    assert "pip install 'metallb-py[lab]'" in lab.stderr and "Traceback" not in lab.stderr
    ok = subprocess.run([str(cli), "config", "check", "--help"], capture_output=True, check=False)
    assert ok.returncode == 0

    pip(f"{src}[lab]")
    demo = subprocess.run(
        [str(cli), "lab", "demo", "--help"], capture_output=True, text=True, check=False
    )
    assert demo.returncode == 0, demo.stderr
    imported = subprocess.run(
        [str(python), "-c", "import metallb_lab.apiserver, metallb_lab.lab.demo"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
