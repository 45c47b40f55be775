"""The package's shape, as ARCHITECTURE.md states it: layers that only import downwards, no import cycles, nothing
under unit_eval importing the bundled trainers, no module above about 400 lines without a stated reason.

Imports are read from the source (``ast``), module-level and function-level alike, so a lazy import cannot hide
an upward arrow. Regression check of the structure, not of numbers."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "unit_eval"

# ARCHITECTURE.md, "Who may import whom": a module may import its own layer or lower ones.
LAYERS = [
    {"errors", "cache", "device", "distributed", "markup", "results", "images", "metrics", "stagetimes"},
    {"weights", "sharding", "features", "extractors", "checkpoint", "datasets", "protocol_specs", "translator",
     "embedded", "synth",
     "reference_models", "demo_assets", "classifier", "classifier_train"},
    {"evaluation", "folders", "aggregate", "selection", "tables", "table_cells", "table_render", "check", "plots", "report"},
    {"commands", "cli"},
]
LONG_OK = "longer than 400 lines because"


def _layer(module: str) -> int | None:
    top = module.split(".")[1] if module.startswith("unit_eval.") else None
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return None


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every unit_eval module ``name`` imports (relative imports resolved), at any depth of the file."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {t for t in found if t == "unit_eval" or t.startswith("unit_eval.")}


MODULES = _modules()
GRAPH = {name: {t for t in _imports(name, path) if t in MODULES and t != name} for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != "unit_eval" and _layer(m) is None] == []


def test_imports_only_go_down_the_layers():
    upward = [(m, t) for m, targets in GRAPH.items() for t in targets
              if m != "unit_eval" and t != "unit_eval" and _layer(t) > _layer(m)]
    assert upward == [], "imports from a lower layer into a higher one (see ARCHITECTURE.md)"


def test_nothing_under_unit_eval_imports_the_trainers_statically():
    """The bundled trainers are reached only by name at run time (a run.pt's model, the CLI edge)."""
    offenders = [(m, t) for m, path in MODULES.items() for t in _imports(m, path)
                 if t.startswith("unit_eval.baselines") and not m.startswith("unit_eval.commands")]
    assert offenders == []


def test_no_import_cycles():
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            # a package importing its own submodules (re-exports in __init__) is not a cycle of concepts
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize("root", ["unit_eval", "baselines"])
def test_modules_stay_small_or_say_why(root):
    long = []
    for path in (REPO / root).rglob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        doc = ast.get_docstring(ast.parse("\n".join(lines))) or ""
        if len(lines) > 420 and LONG_OK not in doc:
            long.append(f"{path.relative_to(REPO)} ({len(lines)} lines)")
    assert long == []


def test_adapters_do_not_import_their_recipes():
    for adapter in (REPO / "baselines").glob("*/adapter.py"):
        names = _imports_any(adapter)
        assert not any(n.endswith("recipe") for n in names), adapter


def _imports_any(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            found.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found
