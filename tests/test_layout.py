"""The layout's rules, read from the source with `ast` (nothing imported): our modules import each other without
a cycle (module-level and in-function imports; `if TYPE_CHECKING:` blocks aside), pixar/ imports nothing of
harness/ or attacks/, attacks/ only pixar/, and pixar/ has no click."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pixar", "harness", "attacks")


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
        for c in sorted((ROOT / pkg).rglob("*.c")):  # compiled extensions (pixar/render/_strips.c): leaf modules,
            out[".".join(c.relative_to(ROOT).with_suffix("").parts)] = c  # they import nothing of ours
    return out


def imported_names(tree: ast.AST):
    """Dotted names each import statement names (`from a.b import c` -> a.b.c), TYPE_CHECKING blocks skipped."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            for stmt in node.orelse:
                yield from imported_names(ast.Module(body=[stmt], type_ignores=[]))
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield from (f"{node.module}.{a.name}" for a in node.names)
        yield from imported_names(node)


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges = {}
    for name, path in mods.items():
        targets = set()
        tree = ast.parse(path.read_text(encoding="utf-8")) if path.suffix == ".py" else ast.Module(body=[], type_ignores=[])
        for dotted in imported_names(tree):
            parts = dotted.split(".")
            hit = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in mods), None)
            if hit and hit != name:
                targets.add(hit)
        edges[name] = targets
    return edges


def test_our_modules_import_each_other_without_a_cycle():
    edges = graph()
    assert len(edges) > 50 and edges["harness.app"] is not None
    try:
        list(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as e:
        pytest.fail(f"import cycle (each imports the next): {' -> '.join(reversed(e.args[1]))}")


def test_layers_point_one_way():
    edges = graph()
    for mod, targets in edges.items():
        top = {t.split(".")[0] for t in targets}
        if mod.startswith("pixar"):
            assert top <= {"pixar"}, f"{mod} imports {sorted(t for t in targets if not t.startswith('pixar'))}"
        elif mod.startswith("attacks"):
            assert top <= {"pixar", "attacks"}, f"{mod} imports {sorted(targets)}"


def test_no_click_in_the_library():
    for path in (ROOT / "pixar").rglob("*.py"):
        names = set(imported_names(ast.parse(path.read_text(encoding="utf-8"))))
        assert not any(n.split(".")[0] == "click" for n in names), path


def test_the_checker_sees_a_cycle(tmp_path, monkeypatch):
    cyclic = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(cyclic).static_order())
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pixar.render import renderer\n"
                     "def f():\n    from pixar.config import RenderConfig\n")
    assert set(imported_names(tree)) == {"typing.TYPE_CHECKING", "pixar.config.RenderConfig"}
