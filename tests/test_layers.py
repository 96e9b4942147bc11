"""The layer order of docs/architecture.md, checked by parsing every module's imports (no import is run).

A module may import its own layer or a lower one, never a higher one; imports under `if TYPE_CHECKING:`
(type hints only) are not counted. Module-level imports between grokinterp's modules form no cycle.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "grokinterp"

# Lowest first. The first matching prefix of a module's dotted name (below `grokinterp.`) gives its layer.
LAYERS = [
    ("config", "stats", "milestones", "atomic"),  # inert data, pure statistics of numbers, the summary's
    # definitions, the all-or-nothing file write
    ("tasks",),
    ("model", "tl_surface", "tl_surface_table", "hooked", "bridge", "objective"),  # the model, its TL views
    # (TL 3's HookedTransformer surface and its table), and the loss it is trained on
    ("plugins",),  # the training loop's seam and the built-in plug-ins
    ("train",),  # the full-batch step and the loop (it writes through a writer it is given)
    ("runs",),  # the run directory: one writer, the reader, training into a run directory
    ("importers", "vision"),  # run directories from elsewhere: published runs, the ViT control
    ("analysis",),
    ("report",),
    ("sweep",),
    ("experiments",),
    ("app",),
    ("cli", "hook_reference", "__init__"),  # commands, and the top-level API a notebook starts from
]


def layer_of(module: str) -> int:
    """The layer index of `module`, a dotted name below `grokinterp` ("analysis.fourier._spectra")."""
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"grokinterp.{module} is in no layer of tests/test_layers.py; add it to LAYERS")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    return skipped


def imports(module: str, path: Path, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, imported grokinterp module) for every import in the file (below `grokinterp.`)."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_nodes(tree)
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if module == "__init__":
        package = []
    found = []
    for node in nodes:
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name[len("grokinterp."):]) for a in node.names if a.name.startswith("grokinterp.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("grokinterp."):
                target = node.module[len("grokinterp."):]
            else:
                continue
            if node.module is None or not target:  # `from . import a, b`: the names are modules
                found += [(node.lineno, ".".join(filter(None, [target, a.name]))) for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def test_no_module_imports_a_higher_layer():
    upward = []
    for module, path in modules().items():
        for line, target in imports(module, path):
            if layer_of(target) > layer_of(module):
                upward.append(f"grokinterp/{path.relative_to(PACKAGE)}:{line} ({LAYERS[layer_of(module)][0]} layer) "
                              f"imports grokinterp.{target} ({LAYERS[layer_of(target)][0]} layer)")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_module_level_imports_form_no_cycle():
    found = modules()
    graph = {}
    for module, path in found.items():
        targets = set()
        for _, target in imports(module, path, top_level_only=True):
            while target and target not in found:  # `from .x import name`: the module is x
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):  # a package's own __init__
                targets.add(target)
        graph[module] = targets
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1 and not nxt.startswith(node + ".") and not node.startswith(nxt + "."):
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                if not all(c.startswith(cycle[0].split(".")[0]) for c in cycle):
                    pytest.fail("import cycle across packages: " + " -> ".join(cycle))
            elif state.get(nxt) is None:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_every_module_has_a_layer():
    for module in modules():
        layer_of(module)


# experiments/repro.py is being restructured on main (its import cycle with reproductions.py included).
PRIVATE_IMPORT_EXCEPTIONS = {"experiments.repro"}


def test_no_module_imports_another_packages_private_module():
    """`grokinterp.sweep._gap` is the sweep package's business; other packages use `grokinterp.sweep`."""
    private = []
    for module, path in modules().items():
        if module in PRIVATE_IMPORT_EXCEPTIONS:
            continue
        for line, target in imports(module, path):
            parts = target.split(".")
            first = next((i for i, part in enumerate(parts) if part.startswith("_")), None)
            if first is None:
                continue
            owner = ".".join(parts[:first])
            if not (module == owner or module.startswith(owner + ".")):
                private.append(f"grokinterp/{path.relative_to(PACKAGE)}:{line} imports grokinterp.{target}")
    assert not private, "imports of another package's private module:\n" + "\n".join(private)


def test_analyses_read_no_files_themselves():
    """Analyses take what they need as arguments (or read it through `Run` and the replay engine)."""
    readers = ("safe_open", "open(", "read_text", "write_text", "load_file", "load_tensors", "read_metrics")
    found = [f"grokinterp/{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
             for module, path in modules().items()
             if module.startswith("analysis") and module != "analysis.replay_engine"
             for n, line in enumerate(path.read_text().splitlines(), 1) if any(r in line for r in readers)]
    assert not found, "file access in analysis modules:\n" + "\n".join(found)
