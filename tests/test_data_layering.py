"""Package layering: the parts of ``m2se`` import one way (no cycle, e.g. m2se.emt -> m2se.data only), no
private cross-imports, the remote code never imports ``m2se``; one home per constant."""

from __future__ import annotations

import ast
from pathlib import Path

import m2se

PACKAGE = Path(m2se.__file__).parent
ROOT = PACKAGE.parent
# The Hub remote code: the flat top-level modules (everything but the packaging and the training script).
REMOTE_CODE = sorted(path for path in ROOT.glob("*.py") if path.stem not in ("setup", "train_m2se"))
SOURCES = [*PACKAGE.rglob("*.py"), *(ROOT / "trainer_callbacks").rglob("*.py"), ROOT / "train_m2se.py"]


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
                module = f"{base}.{node.module}".lstrip(".") if node.module else base
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


def _layer(module: str) -> str | None:
    """The part of ``m2se`` a module belongs to (``m2se.data``, ``m2se.reporting`` ...); None outside it."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "m2se" and len(parts) > 1 else None


def _owner(module: str) -> str:
    """Who may use a module's private names: its ``m2se`` part, its top-level package, or the flat module."""
    return _layer(module) or module.split(".")[0]


def _layer_graph() -> dict[str, set[str]]:
    """``m2se`` part -> the other parts it imports (the parts: subpackages and top-level modules)."""
    parts = {f"m2se.{path.stem}" for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    parts |= {f"m2se.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = _layer(".".join(path.relative_to(ROOT).with_suffix("").parts))
        targets = {_layer(name) for name in _imported_modules(path)} & parts
        graph.setdefault(source, set()).update(targets - {source})
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (first node repeated at the end), or [] when it has none."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str]:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return []
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            if found := visit(target):
                return found
        visiting.pop()
        done.add(node)
        return []

    for node in sorted(graph):
        if found := visit(node):
            return found
    return []


def test_the_parts_of_m2se_import_downward_only():
    # Every import counts, also one inside a function: a lazy import hides a cycle, it does not remove it.
    graph = _layer_graph()
    assert _cycle(graph) == []
    assert "m2se.data" in graph["m2se.emt"] and "m2se.emt" in graph["m2se.training"]  # the graph is real


def test_the_cycle_check_finds_a_cycle():
    graph = {"m2se.data": {"m2se.cli"}, "m2se.emt": {"m2se.data"}}
    assert _cycle(graph) == []
    assert _cycle({**graph, "m2se.data": {"m2se.cli", "m2se.emt"}}) == ["m2se.data", "m2se.emt", "m2se.data"]


def test_no_module_imports_a_private_name_of_another_package():
    # m2se's parts, trainer_callbacks, train_m2se.py and the remote code: `_name`s stay inside their owner.
    offenders = []
    for path in [*SOURCES, *REMOTE_CODE]:
        own = _owner(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for name in _imported_modules(path):
            parts = name.split(".")
            private = [
                i for i, part in enumerate(parts) if part.startswith("_") and not part.startswith("__")
            ]
            if private and _owner(".".join(parts[: private[0]])) != own:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_the_remote_code_never_imports_the_m2se_package():
    # On the Hub a checkpoint ships only the flat modules: an import of m2se / trainer_callbacks would fail.
    assert {
        path.name: sorted(
            name for name in _imported_modules(path) if name.split(".")[0] in ("m2se", "trainer_callbacks")
        )
        for path in REMOTE_CODE
    } == {path.name: [] for path in REMOTE_CODE}


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
    # One per checkpoint family: a checkpoint ships only its own model's modules.
    assert sorted(path.name for path in REMOTE_CODE if "IGNORE_INDEX" in _assigned_names(path)) == [
        "processing_mse_adapter.py",
        "records_emoverse.py",
    ]
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


def test_label_sets_and_the_system_prompt_are_written_once():
    # The remote code holds them (a checkpoint ships it); everything else reads them. A literal copy of a
    # label set (in any order or case, with or without the answers' period) or of the system prompt would be a
    # second home. MELD's emotions are two facts of two models: MSE-Adapter's class index order
    # (tasks_mse_adapter) and the order EmoVerse's ER query lists them in (templates_emoverse).
    import tasks_mse_adapter
    import templates_emoverse

    def normal(labels) -> frozenset[str]:
        return frozenset(label.removesuffix(".").casefold() for label in labels)

    homes: dict[frozenset[str], set[str]] = {}
    for labels, home in [
        (tasks_mse_adapter.MELD_LABELS, "tasks_mse_adapter.py"),
        (tasks_mse_adapter.CHERMA_LABELS, "tasks_mse_adapter.py"),
        (templates_emoverse.EMT_TASKS, "templates_emoverse.py"),
        *((answers, "templates_emoverse.py") for answers in templates_emoverse.CLOSED_TASK_ANSWERS.values()),
    ]:
        homes.setdefault(normal(labels), set()).add(home)
    copies = []
    for path in [*PACKAGE.rglob("*.py"), *REMOTE_CODE, *SOURCES[-1:]]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) > 1:
                values = [elt.value for elt in node.elts if isinstance(elt, ast.Constant)]
                strings = len(values) == len(node.elts) and all(isinstance(value, str) for value in values)
                if strings and path.name not in homes.get(normal(values), {path.name}):
                    copies.append(f"{path.relative_to(ROOT)}:{node.lineno} {values}")
            elif isinstance(node, ast.Constant) and node.value == templates_emoverse.DEFAULT_SYSTEM_PROMPT:
                copies.append(f"{path.relative_to(ROOT)}: the system prompt")
    assert copies == ["templates_emoverse.py: the system prompt"]  # its one home
