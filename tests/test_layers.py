"""The house is layered: each part imports only from the parts below it, so no import circle can form.

Read from the source (every import, those inside functions too), so a lazy import that
climbs a layer fails here even when no test happens to run it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import modnet_matting

PACKAGE = Path(modnet_matting.__file__).parent
#: Ground first; parts in one layer do not import each other.
LAYERS = [{"model", "allocator"}, {"io"}, {"weights"}, {"export"}, {"inference", "compose"},
          {"evaluate", "video", "deploy"}, {"train"}, {"server"}, {"cli"}, {"__init__", "__main__"}]
#: Inside ``inference/``, the same rule: probes and preprocessing, runtimes and edge refinement, sources,
#: the choice (and the remembered one), the face.
INFERENCE_LAYERS = [{"preprocess", "hardware"}, {"backends", "refine"}, {"predictor", "sources"},
                    {"auto", "int8", "warm"}, {"__init__"}]


def _imports(path: Path, root: Path) -> set[str]:
    """Absolute dotted names of the modnet_matting modules a file imports."""
    module = ["modnet_matting", *path.relative_to(root).with_suffix("").parts]
    package = module[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)]
            target = [*base, *(node.module.split(".") if node.module else [])]
            found |= {".".join([*target, alias.name]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("modnet_matting"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("modnet_matting")}
    return found


def _rank(part: str, layers: list[set[str]]) -> int:
    ranks = [i for i, layer in enumerate(layers) if part in layer]
    assert ranks, f"{part} is in no layer: give it its place in LAYERS or INFERENCE_LAYERS"
    return ranks[0]


def _violations(files: list[Path], top: list[str], layers: list[set[str]], root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in files:
        here = path.relative_to(root).with_suffix("").parts[len(top)]
        _rank(here, layers)
        for target in _imports(path, root):
            parts = target.split(".")[1:]
            if parts[:len(top)] != top or len(parts) <= len(top):
                continue
            there = parts[len(top)]
            if there == here or there not in set().union(*layers):
                continue  # its own part, or a name (a class, __version__) imported from the package itself
            if _rank(there, layers) >= _rank(here, layers):
                bad.append(f"{path.relative_to(root)} imports {target}")
    return bad


def test_each_part_imports_only_from_the_layers_below() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert _violations(files, [], LAYERS) == []


def test_inside_inference_each_module_imports_only_from_below() -> None:
    files = sorted((PACKAGE / "inference").rglob("*.py"))
    assert _violations(files, ["inference"], INFERENCE_LAYERS) == []


def test_the_rule_catches_a_lazy_import_that_climbs(tmp_path: Path) -> None:
    """The check itself: an import inside a function, from a higher layer, is found."""
    fake = tmp_path / "model" / "probe.py"
    fake.parent.mkdir()
    fake.write_text("def f():\n    from ..cli import main\n")
    assert _violations([fake], [], LAYERS, root=tmp_path) == ["model/probe.py imports modnet_matting.cli.main"]


def _module_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (any import: in functions and under TYPE_CHECKING too)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(["modnet_matting", *(parts[:-1] if parts[-1] == "__init__" else parts)])] = path
    graph = {}
    for name, path in modules.items():
        targets = set()
        for target in _imports(path, root):
            # "from .writer import StreamTiming" names a class: the module is the longest known prefix
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):  # a package's own __init__
                targets.add(target)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, once each (by depth-first search)."""
    found, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_two_modules_import_each_other_in_a_circle() -> None:
    assert [" -> ".join(c) for c in _cycles(_module_graph())] == []


def test_the_circle_check_finds_a_circle_through_type_checking(tmp_path: Path) -> None:
    (tmp_path / "video").mkdir()
    (tmp_path / "video" / "__init__.py").write_text("")
    (tmp_path / "video" / "audio.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                 "    from .writer import Timing\n")
    (tmp_path / "video" / "writer.py").write_text("from .audio import Copier\n")
    assert [" -> ".join(c) for c in _cycles(_module_graph(tmp_path))] == [
        "modnet_matting.video.audio -> modnet_matting.video.writer -> modnet_matting.video.audio"]
