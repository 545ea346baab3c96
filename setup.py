"""Only the extras live here (everything else is in setup.cfg).

`lab` installs the lab and test infrastructure, which ships beside the product as its own
distribution in `lab/` (`metallb-py-lab`, package `metallb_lab`): the product wheel holds none
of it. Its requirement names that directory by absolute path (PEP 508 has no relative file
URLs), so `pip install '.[lab]'` from a checkout brings `metallb-py lab` back.
"""

from pathlib import Path

from setuptools import setup

LAB = Path(__file__).resolve().parent / "lab"

TEST = [
    "pytest>=7.4",
    "pytest-timeout>=2.2",
    "hypothesis>=6.90",
    "ruff==0.17.6",
    "mypy==2.4.1",
    "types-PyYAML",
    "wheel",  # tests build the wheels without build isolation (tests/ops/test_packaging.py)
    # Independent oracles in the tests: frames and BGP messages built without our codecs.
    "scapy>=2.5",
]

setup(extras_require={"test": TEST, "lab": [f"metallb-py-lab @ {LAB.as_uri()}"]})
