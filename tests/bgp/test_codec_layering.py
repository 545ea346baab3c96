"""The codec is below the config (docs/DEVELOPING.md): importing it loads nothing else of the
product, and config values cross into it only through `CommunityValue`."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys

from metallb_py.bgp import messages as m
from metallb_py.config.model import Community


def test_importing_the_codec_loads_no_other_product_package() -> None:
    code = (
        "import json, sys, metallb_py.bgp.messages; "
        "print(json.dumps(sorted(n for n in sys.modules if n.startswith('metallb_py'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(out.stdout)
    assert loaded, out.stderr
    assert [n for n in loaded if not n.startswith("metallb_py.bgp.messages")] == [
        "metallb_py",
        "metallb_py.bgp",
    ]


def test_config_communities_are_community_values() -> None:
    route = m.Route(ipaddress.ip_network("198.51.100.0/24"), 0, (Community(9), Community(1)))
    assert route.attributes.communities == (1, 9)
    assert route.communities == (Community(1), Community(9))
