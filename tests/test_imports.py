"""The import picture of docs/DEVELOPING.md ("Layers and allowed imports"), enforced.

Every module of `metallb_py` belongs to one component (longest name prefix wins). An import
from one component into another must follow the ARROWS of the picture, directly or through
components below; the arrows have no cycle, so neither has the component graph; modules do
not import each other in a circle. Pure components
import no adapter and no I/O library, and nothing imports the lab (`metallb_lab`).

The imports are read with `ast` from the source files (every `import`, also those inside
functions and under TYPE_CHECKING), so nothing is executed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import metallb_py

PACKAGE = Path(metallb_py.__file__).parent

COMPONENTS: dict[str, tuple[str, ...]] = {
    # pure: values in, values out
    "version": ("metallb_py",),
    "k8s objects": ("metallb_py.k8s.objects", "metallb_py.k8s.selectors", "metallb_py.k8s.outcome"),
    "config": ("metallb_py.config",),
    "allocator": ("metallb_py.allocator",),
    "bgp codec": ("metallb_py.bgp.messages",),
    "bfd logic": ("metallb_py.bfd.packet", "metallb_py.bfd.session"),
    "layer2 frames": (
        "metallb_py.layer2.frames",
        "metallb_py.layer2.state",
        "metallb_py.layer2.stats",
    ),
    "configmap reader": ("metallb_py.k8s.configmap",),
    "addons": ("metallb_py.addons",),
    "controller decisions": (
        "metallb_py.controller.reconcile",
        "metallb_py.controller.service",
        "metallb_py.controller.plan",
    ),
    "speaker decisions": (
        "metallb_py.speaker.decision",
        "metallb_py.speaker.endpoints",
        "metallb_py.speaker.nodes",
        "metallb_py.speaker.heartbeat",
    ),
    # adapters: sockets, threads, timers, the Kubernetes client, stdout
    "logs": ("metallb_py.logs",),
    "metrics": ("metallb_py.metrics",),
    "k8s adapters": ("metallb_py.k8s",),
    "bgp session": ("metallb_py.bgp",),
    "bfd transport": ("metallb_py.bfd",),
    "layer2 responders": ("metallb_py.layer2",),
    "speaker process": ("metallb_py.speaker",),
    "controller process": ("metallb_py.controller",),
    "doctor": ("metallb_py.doctor",),
    "cli": ("metallb_py.cli", "metallb_py.__main__"),
}
"""Component -> the modules it holds (a name also covers its submodules, unless a longer name
of another component does). `version` is the package's `__init__` only."""

PURE = frozenset(
    {
        "version",
        "k8s objects",
        "config",
        "allocator",
        "bgp codec",
        "bfd logic",
        "layer2 frames",
        "configmap reader",
        "addons",
        "controller decisions",
        "speaker decisions",
    }
)

ARROWS: dict[str, frozenset[str]] = {
    "version": frozenset(),
    "k8s objects": frozenset(),
    "config": frozenset({"k8s objects"}),
    "allocator": frozenset({"config"}),
    "bgp codec": frozenset(),
    "bfd logic": frozenset(),
    "layer2 frames": frozenset(),
    "configmap reader": frozenset({"config"}),
    "addons": frozenset({"config", "version"}),
    "controller decisions": frozenset({"allocator"}),
    "speaker decisions": frozenset({"allocator"}),
    "logs": frozenset(),
    "metrics": frozenset(),
    "k8s adapters": frozenset({"configmap reader", "logs", "metrics"}),
    "bgp session": frozenset({"bgp codec", "config"}),
    "bfd transport": frozenset({"bfd logic"}),
    "layer2 responders": frozenset({"layer2 frames"}),
    "speaker process": frozenset(
        {"speaker decisions", "k8s adapters", "bgp session", "bfd transport", "layer2 responders"}
    ),
    "controller process": frozenset({"controller decisions", "k8s adapters", "version"}),
    "doctor": frozenset({"allocator", "k8s adapters", "version"}),
    "cli": frozenset({"controller process", "speaker process", "doctor", "addons"}),
}
"""The arrows of the picture in docs/DEVELOPING.md: component -> the components below it that
it may import, and through them everything they may import (`ALLOWED`)."""


def _below(component: str, seen: frozenset[str] = frozenset()) -> frozenset[str]:
    if component in seen:
        raise AssertionError(f"the arrows go in a circle through {component}")
    out: set[str] = set()
    for target in ARROWS[component]:
        out |= {target, *_below(target, seen | {component})}
    return frozenset(out)


ALLOWED = {component: _below(component) for component in ARROWS}
"""Component -> every component it may import (the arrows, followed down)."""

KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}
"""(importing module, imported module) -> why it is tolerated for now and who removes it.
Empty: the BGP codec's import of `config.model` (the one the issue named) is gone."""

IO_LIBRARIES = frozenset(
    {
        "asyncio",
        "concurrent",
        "ctypes",
        "http",
        "kubernetes",
        "logging",
        "metallb_lab",
        "multiprocessing",
        "os",
        "prometheus_client",
        "pyroute2",
        "queue",
        "scapy",
        "select",
        "selectors",
        "signal",
        "socket",
        "socketserver",
        "ssl",
        "subprocess",
        "sys",
        "threading",
        "time",
        "urllib",
    }
)
"""Top-level modules a pure module must not import: sockets, threads, processes, clocks,
logging, the Kubernetes client, the environment."""

PURE_NAMES_OF_IO_LIBRARIES: dict[str, frozenset[str]] = {
    "socket": frozenset({"AF_INET", "AF_INET6", "inet_ntop", "inet_pton"}),
}
"""Names a pure module may take from an I/O library because they are pure conversions
(`allocator.ips` parses and prints addresses with `inet_pton`/`inet_ntop`, docs/DEVELOPING.md)."""


# --- reading the imports -------------------------------------------------------------------------


def _module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _imports(name: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(imported module, names taken from it) for every import statement of `name`."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if _is_package(name) else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names = tuple(alias.name for alias in node.names)
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if submodules:
                yield from ((s, ()) for s in submodules)
                rest = tuple(n for n in names if f"{target}.{n}" not in MODULES)
                if rest:
                    yield target, rest
            else:
                yield target, names


def _component(module: str) -> str | None:
    """The component holding `module`: the one with the longest matching name."""
    matches = [
        (len(prefix), component)
        for component, prefixes in COMPONENTS.items()
        for prefix in prefixes
        if module == prefix or (prefix != "metallb_py" and module.startswith(prefix + "."))
    ]
    return max(matches)[1] if matches else None


def _product_edges() -> Iterator[tuple[str, str]]:
    for name in MODULES:
        for target, _ in _imports(name):
            if target == "metallb_py" or target.startswith("metallb_py."):
                yield name, target


EDGES = sorted(set(_product_edges()))


# --- the checks ---------------------------------------------------------------------------------


def test_every_module_has_a_place_in_the_picture() -> None:
    unplaced = [m for m in MODULES if _component(m) is None]
    assert unplaced == [], "add these modules to COMPONENTS and to docs/DEVELOPING.md"
    assert set(ARROWS) == set(COMPONENTS)
    assert set(COMPONENTS) >= PURE


def test_imports_follow_the_allowed_edges() -> None:
    wrong = []
    for source, target in EDGES:
        if target not in MODULES:
            wrong.append(f"{source} imports {target}, which does not exist")
            continue
        src, dst = _component(source), _component(target)
        assert src is not None and dst is not None
        if src == dst or dst in ALLOWED[src] or (source, target) in KNOWN_EXCEPTIONS:
            continue
        wrong.append(f"{source} ({src}) imports {target} ({dst})")
    assert wrong == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph`, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_component_graph_has_no_cycle() -> None:
    assert _cycle({c: set(targets) for c, targets in ARROWS.items()}) is None


def test_modules_do_not_import_each_other_in_a_circle() -> None:
    graph: dict[str, set[str]] = {}
    for source, target in EDGES:
        # A package's __init__ that re-exports its submodules is not a circle with them.
        if not target.startswith(source + "."):
            graph.setdefault(source, set()).add(target)
    assert _cycle(graph) is None


def test_pure_modules_import_no_adapter_and_no_io() -> None:
    wrong = []
    for name in MODULES:
        if _component(name) not in PURE:
            continue
        for target, names in _imports(name):
            top = target.split(".")[0]
            if top in IO_LIBRARIES:
                allowed = PURE_NAMES_OF_IO_LIBRARIES.get(target, frozenset())
                if not names or not set(names) <= allowed:
                    wrong.append(f"{name} imports {target} {list(names) or ''}")
            elif (
                top == "metallb_py"
                and _component(target) not in PURE
                and (name, target) not in KNOWN_EXCEPTIONS
            ):
                wrong.append(f"{name} imports the adapter {target}")
    assert wrong == []


def test_a_package_holding_pure_modules_imports_only_pure_modules_on_import() -> None:
    """Importing `metallb_py.layer2.frames` runs `metallb_py/layer2/__init__.py` first: a
    package's `__init__` must not drag adapters into a pure module's importers."""
    wrong = []
    for name in MODULES:
        if not _is_package(name):
            continue
        holds_pure = any(_component(m) in PURE for m in MODULES if m.startswith(name + "."))
        if not holds_pure:
            continue
        for target, _ in _imports(name):
            if target.startswith("metallb_py") and _component(target) not in PURE:
                wrong.append(f"{name}/__init__.py imports {target}")
    assert wrong == []


def test_nothing_imports_the_lab() -> None:
    assert [
        f"{name} imports {target}"
        for name in MODULES
        for target, _ in _imports(name)
        if target.split(".")[0] == "metallb_lab"
    ] == []


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("metallb_py", "version"),
        ("metallb_py.k8s.objects", "k8s objects"),
        ("metallb_py.k8s.informer", "k8s adapters"),
        ("metallb_py.bgp.messages.wire", "bgp codec"),
        ("metallb_py.bgp.session", "bgp session"),
        ("metallb_py.layer2.frames", "layer2 frames"),
        ("metallb_py.layer2.responder", "layer2 responders"),
        ("metallb_py.speaker.decision", "speaker decisions"),
        ("metallb_py.speaker.main", "speaker process"),
        ("metallb_py.cli.plan_cmd", "cli"),
    ],
)
def test_components_by_longest_prefix(module: str, expected: str) -> None:
    assert _component(module) == expected


def test_from_a_package_import_a_submodule_is_an_edge_to_the_submodule() -> None:
    """`from metallb_py.speaker import decision as d` depends on `speaker.decision`, not on
    the package."""
    assert ("metallb_py.speaker.main", "metallb_py.speaker.decision") in EDGES
    assert ("metallb_py.speaker.main", "metallb_py.speaker") not in EDGES
