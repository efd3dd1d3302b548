"""Package layering: imports go one way (m2se.emt -> m2se.data), no private cross-imports, one home per
constant."""

from __future__ import annotations

import ast
from pathlib import Path

import m2se

PACKAGE = Path(m2se.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_data_imports_nothing_from_emt_or_training():
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(
            name for name in _imported_modules(path) if name.startswith(("m2se.emt", "m2se.training"))
        )
        for path in (PACKAGE / "data").glob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_no_module_imports_a_private_module_of_another_package():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        own_package = ".".join(path.relative_to(PACKAGE.parent).parts[:2])
        for name in _imported_modules(path):
            parts = name.split(".")
            private = any(part.startswith("_") and part != "__future__" for part in parts[1:])
            if name.startswith("m2se.") and private and not name.startswith(own_package + "."):
                offenders.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert offenders == []


def _assigned_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        target.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }


def test_ignore_index_and_the_emt_task_list_have_one_home():
    modules = list(PACKAGE.rglob("*.py"))
    # IGNORE_INDEX is the remote code's (the processors build the labels); m2se imports it from there.
    assert [path for path in modules if "IGNORE_INDEX" in _assigned_names(path)] == []
    # The EMT task list is the remote code's (templates_emoverse.py: the EmoVerse pipeline builds its queries
    # from it); m2se.emt.templates re-exports it.
    homes = [
        path.relative_to(PACKAGE.parent).as_posix()
        for path in [*modules, *PACKAGE.parent.glob("*.py")]
        if "EMT_TASKS" in _assigned_names(path)
    ]
    assert homes == ["templates_emoverse.py"]
    assert not [path for path in modules if "TASKS" in _assigned_names(path)]


def test_the_two_task_lists_have_distinct_names():
    # MSE-Adapter's task types (regression / classification) and M2SE's EMT tasks are different facts.
    tasks = PACKAGE.parent / "tasks_mse_adapter.py"
    assert {"TASK_TYPES"} <= _assigned_names(tasks) and "TASKS" not in _assigned_names(tasks)
