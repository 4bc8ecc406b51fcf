"""The package's layers, read from its imports (AST): a module imports only from its own layer
and the layers below it, re-exports nothing, imports inside functions only with a comment saying
why, and stays short enough to read in one sitting."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lowrank"

# From the bottom up. The leaves are read by every layer; ``lowrank`` itself (``__init__``)
# imports nothing, so any module may import it (``provenance`` reads its version).
LAYERS = ("leaves", "theory", "measure", "nets", "experiments", "book", "cli")
LEAVES = ("lowrank._checks", "lowrank.data", "lowrank.provenance")
LONGEST_MODULE = 460  # lines: about 450, the redesign's bound


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside the package."""
    if module == "lowrank.__main__":
        return "cli"
    if module in LEAVES:
        return "leaves"
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return parts[1]
    raise ValueError(f"{module} is in no layer: add it to a layer folder or to LEAVES")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every ``lowrank`` module imported, relative imports resolved."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "lowrank"
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "lowrank":
                continue
            for a in node.names:  # `from lowrank.theory import mixtures` imports a module
                candidate = f"{target}.{a.name}"
                is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py")
                is_folder = PACKAGE.parent / candidate.replace(".", "/") / "__init__.py"
                found.append(
                    (
                        node.lineno,
                        candidate if is_module.exists() or is_folder.exists() else target,
                    )
                )
    return found


def upward_imports(path: Path, root: Path = PACKAGE) -> list[str]:
    """Imports in ``path`` from a layer above its own, as ``file:line: a -> b`` lines."""
    module = module_name(path, root)
    if module == "lowrank":
        return []
    own = LAYERS.index(layer_of(module))
    tree = ast.parse(path.read_text())
    bad = []
    for line, target in imported_modules(tree, module, path.name == "__init__.py"):
        if target == "lowrank":
            continue
        if LAYERS.index(layer_of(target)) > own:
            bad.append(f"{path}:{line}: {module} ({layer_of(module)}) imports {target}")
    return bad


def modules():
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: module_name(p))
def test_a_module_imports_only_its_own_layer_and_the_layers_below(path):
    assert upward_imports(path) == []


def test_the_rule_sees_a_planted_upward_import(tmp_path):
    root = tmp_path / "lowrank"
    (root / "theory").mkdir(parents=True)
    planted = root / "theory" / "mixtures.py"
    planted.write_text("from lowrank.measure import stats\nfrom ..book.report import glue\n")
    assert len(upward_imports(planted, root)) == 2
    planted.write_text("from lowrank.data import overlay\nfrom . import closed_forms\n")
    assert upward_imports(planted, root) == []


@pytest.mark.parametrize("path", modules(), ids=lambda p: module_name(p))
def test_a_module_exports_only_what_it_defines(path):
    tree = ast.parse(path.read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)} | {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign | ast.AnnAssign)
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        if isinstance(t, ast.Name)
    }
    exported = set()
    for n in tree.body:
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets):
            exported = {e.value for e in n.value.elts}
    assert exported <= defined, f"{path} re-exports {sorted(exported - defined)}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: module_name(p))
def test_an_import_inside_a_function_says_why(path):
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    silent = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import | ast.ImportFrom):
                here, above = lines[node.lineno - 1], lines[node.lineno - 2]
                if "#" not in here and not above.strip().startswith("#"):
                    silent.append(f"{path}:{node.lineno}: {here.strip()}")
    assert silent == []


@pytest.mark.parametrize("path", modules(), ids=lambda p: module_name(p))
def test_a_module_reads_in_one_sitting(path):
    assert len(path.read_text().splitlines()) <= LONGEST_MODULE
