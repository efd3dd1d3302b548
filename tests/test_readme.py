"""README.md runs as written.

* Every ```python snippet runs offline, in a fresh process and a temporary folder that holds the small input
  files the snippets name; the snippets of one section run in order in one process (a snippet may build on the
  one before). Errors point at the README line (the snippets are compiled under the README's own path and
  line numbers).
* Every shell command of a ```bash block is run, here (the training launch lines, with the output folder moved
  to a temporary path and the README's own small-data overrides) or by ``tests/test_emt_cli.py`` and the Data
  section's inputs here (the data commands), or is the set-up line that CI runs itself (``.ci/run``).
* Only a block preceded by ``<!-- readme-test: needs the Hub ... -->`` (whose text says so in words) is left
  out; a new snippet or command that is neither run nor marked fails
  ``test_every_readme_block_is_run_or_marked``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO_ROOT, run_in_fresh_process
from test_emoverse_video import write_clip
from test_emt_cli import _readme_commands, _write_readme_inputs
from test_raw_media_end_to_end import readme_commands as raw_media_commands
from test_raw_media_end_to_end import write_readme_inputs as write_raw_media_inputs

from m2se.data.__main__ import main as data_cli
from m2se.emt.__main__ import main as emt_cli

README = REPO_ROOT / "README.md"
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
HUB_MARKER = re.compile(r"^<!-- readme-test: needs the Hub\b.*-->$")
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    section: str  # the `## ` heading above it ("top" before the first one)
    language: str
    line: int  # 1-based line of the opening fence
    code: str
    needs_hub: bool  # preceded by the `readme-test: needs the Hub` marker

    @property
    def name(self) -> str:
        return f"README.md:{self.line} ({self.section}, {self.language})"


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block, its section, and whether the Hub marker is the last non-blank line before it."""
    blocks, section, previous = [], "top", ""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = FENCE.match(line)
        if line.startswith("## "):
            section = line[3:].strip()
        if fence:
            indent, start, body = len(fence.group(1)), index, []
            index += 1
            while index < len(lines) and lines[index].strip() != "```":
                body.append(lines[index][indent:])
                index += 1
            marked = bool(HUB_MARKER.match(previous.strip()))
            blocks.append(Block(section, fence.group(2), start + 1, "\n".join(body) + "\n", marked))
            previous = ""
        elif line.strip():
            previous = line
        index += 1
    return blocks


def shell_commands(block: Block) -> list[str]:
    """The commands of a bash block: comment-only lines dropped, backslash continuations joined."""
    commands, pending = [], ""
    for line in block.code.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        commands.append((pending + line).strip())
        pending = ""
    return commands


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
PYTHON_SECTIONS = list(dict.fromkeys(block.section for block in BLOCKS if block.language == "python"))


def normalised(command: str) -> str:
    """The command as its words, without a trailing comment or alignment spaces."""
    return shlex.join(shlex.split(command, comments=True))


# The "Your own videos" commands, which tests/test_raw_media_end_to_end.py runs as written on clips it makes.
RAW_MEDIA_COMMANDS = [normalised(command) for command in raw_media_commands()]
# Single launch lines (the set-up lines chain pip with `&&` and are checked against CI instead).
TRAINING_COMMANDS = [
    normalised(command)
    for block in BLOCKS
    if block.language == "bash" and not block.needs_hub
    for command in shell_commands(block)
    if "train_m2se.py" in shlex.split(command, comments=True)
    and "&&" not in command
    and normalised(command) not in RAW_MEDIA_COMMANDS
]


# --- inputs the snippets name, written into the snippets' working folder ----------------------------------


def write_data_section_outputs(root: Path) -> None:
    """What the Data section's Python snippet reads: the Data section's own commands run as written on the
    small inputs of tests/test_emt_cli.py (so these commands run here too)."""
    _write_readme_inputs(root)
    cwd = Path.cwd()
    os.chdir(root)
    try:
        for command in _readme_commands("python -m m2se.data "):
            assert data_cli(shlex.split(command)[3:]) == 0, command
        for command in _readme_commands("python -m m2se.emt "):
            assert emt_cli(shlex.split(command)[3:]) == 0, command
    finally:
        os.chdir(cwd)


def write_emoverse_clip(root: Path) -> None:
    """The video the EmoVerse record names."""
    write_clip(root / "dia1_utt0.mp4")


SECTION_INPUTS: dict[str, Callable[[Path], None]] = {
    "EmoVerse": write_emoverse_clip,
    "Data": write_data_section_outputs,
    "Your own videos": write_raw_media_inputs,
}

SNIPPET_RUNNER = """\
import json, sys

namespace = {"__name__": "__main__"}
for line, code in json.load(open(sys.argv[1], encoding="utf-8")):
    # Padded so that tracebacks name the README's own line (and show it: linecache reads the README).
    exec(compile("\\n" * line + code, sys.argv[2], "exec"), namespace)
    print(f"README.md:{line} ran", flush=True)
"""


# --- the checks ---------------------------------------------------------------------------------------------


def test_readme_has_the_blocks_this_file_expects():
    """The parser sees the README's blocks (an empty list would make every test below pass vacuously)."""
    languages = {block.language for block in BLOCKS}
    assert {"python", "bash"} <= languages, languages
    assert {"MSE-Adapter", "EmoVerse", "Data", "Metrics"} <= set(PYTHON_SECTIONS), PYTHON_SECTIONS
    assert any("tiny_emoverse_m2se" in command for command in TRAINING_COMMANDS), TRAINING_COMMANDS


def test_hub_marker_is_recognised_only_right_before_a_block():
    text = (
        "## A\n<!-- readme-test: needs the Hub (weights download) -->\n\n```python\nx = 1\n```\n"
        "<!-- readme-test: needs the Hub -->\nSome words.\n```python\ny = 2\n```\n"
        "```bash\n# comment\npython train_m2se.py \\\n  --recipe demo  # trailing\n```\n"
    )
    first, second, third = readme_blocks(text)
    assert (first.section, first.line, first.code, first.needs_hub) == ("A", 4, "x = 1\n", True)
    assert not second.needs_hub
    assert [normalised(command) for command in shell_commands(third)] == [
        "python train_m2se.py --recipe demo"
    ]


def test_every_marked_block_says_in_words_that_it_needs_the_hub():
    lines = README.read_text(encoding="utf-8").splitlines()
    for block in (block for block in BLOCKS if block.needs_hub):
        # The sentence introducing the block (the prose above the marker) must say so to a reader.
        prose = " ".join(lines[max(0, block.line - 8) : block.line - 1])
        visible = re.sub(r"<!--.*?-->", "", prose)
        assert re.search(r"\bHub\b", visible), (
            f"{block.name}: the text above it does not say it needs the Hub"
        )


def ci_steps() -> list[str]:
    """What `.ci/run` runs, one entry per command (lines split at `&&`), normalised."""
    lines = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [normalised(step) for line in commands for step in line.split(" && ")]


def run_by_ci(command: str) -> bool:
    """Whether `.ci/run` runs this `&&` chain, step after step."""
    steps, ci = [normalised(step) for step in command.split(" && ")], ci_steps()
    return any(ci[start : start + len(steps)] == steps for start in range(len(ci)))


def command_kind(command: str) -> str | None:
    """How a README command is run, or None when nothing runs it."""
    words = shlex.split(command, comments=True)
    if run_by_ci(command):
        return "CI: .ci/run"
    if words[:4] == ["python3", "-m", "venv", ".venv"]:
        return "set-up: its extras and launch line are checked by test_setup_lines_match_what_ci_runs"
    if words[:3] in (["python", "-m", "m2se.data"], ["python", "-m", "m2se.emt"]):
        return "tests/test_emt_cli.py and the Data inputs here"
    if normalised(command) in TRAINING_COMMANDS:
        return "test_training_command_runs_as_written"
    if normalised(command) in RAW_MEDIA_COMMANDS:
        return "tests/test_raw_media_end_to_end.py"
    return None


def unrun(blocks: list[Block]) -> list[str]:
    """The blocks and commands that no test runs and no marker excuses."""
    found = []
    for block in blocks:
        if block.needs_hub or block.language == "python":  # every Python section is run below
            continue
        if block.language != "bash":
            found.append(f"{block.name}: a ```{block.language} block (use ```python or ```bash)")
            continue
        found += [
            f"{block.name}: {command}" for command in shell_commands(block) if not command_kind(command)
        ]
    return found


def test_every_readme_block_is_run_or_marked():
    """A new snippet or command fails here until a test runs it or its block is marked as needing the Hub."""
    assert set(PYTHON_SECTIONS) == {block.section for block in BLOCKS if block.language == "python"}
    assert not unrun(BLOCKS), "README blocks that no test runs and no marker excuses:\n" + "\n".join(
        unrun(BLOCKS)
    )


def test_a_new_command_or_block_without_a_test_or_marker_is_caught():
    text = (
        "## X\n```bash\npython -m m2se.features extract --manifest m.csv\n```\n"
        "```console\n$ ls\n```\n<!-- readme-test: needs the Hub -->\n```bash\nhuggingface-cli login\n```\n"
    )
    assert unrun(readme_blocks(text)) == [
        "README.md:2 (X, bash): python -m m2se.features extract --manifest m.csv",
        "README.md:5 (X, console): a ```console block (use ```python or ```bash)",
    ]


def test_setup_lines_match_what_ci_runs():
    """The README's test set-up line is what `.ci/run` runs; the demo set-up line installs extras that exist
    and ends with a launch line that test_training_command_runs_as_written runs."""
    setup = [
        command
        for block in BLOCKS
        if block.language == "bash" and block.section == "top"
        for command in shell_commands(block)
    ]
    tests_line = [command for command in setup if command.endswith("-m pytest tests")]
    assert len(tests_line) == 1 and run_by_ci(tests_line[0]), (tests_line, ci_steps())
    assert not run_by_ci(tests_line[0].replace("-e", "-E")), "run_by_ci matches anything"
    setup_py = (REPO_ROOT / "setup.py").read_text(encoding="utf-8")
    for command in set(setup) - set(tests_line):
        *install, launch = command.split(" && ")
        for extra in re.findall(r'-e "\.\[(\w+)\]"', " && ".join(install)):
            assert f'"{extra}":' in setup_py or f'EXTRAS["{extra}"]' in setup_py, f"{command}: no {extra}"
        assert normalised(launch) in TRAINING_COMMANDS, f"{command}: its launch line is not run by a test"


def test_every_top_level_module_is_installed():
    """The snippets import the flat remote-code modules from wherever the user runs them: each top-level
    module must be in setup.py's REMOTE_CODE_MODULES, or `pip install` leaves it out (ModuleNotFoundError)."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text(encoding="utf-8"))
    (listed,) = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "REMOTE_CODE_MODULES"
    ]
    scripts = {"setup", "train_m2se"}
    modules = {path.stem for path in REPO_ROOT.glob("*.py")} - scripts
    assert modules <= set(listed), (
        f"missing from setup.py REMOTE_CODE_MODULES: {sorted(modules - set(listed))}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("section", PYTHON_SECTIONS)
def test_python_snippets_run_offline(section, tmp_path):
    snippets = [block for block in BLOCKS if block.section == section and block.language == "python"]
    runnable = [block for block in snippets if not block.needs_hub]
    if not runnable:
        pytest.skip(f"every Python snippet of {section!r} is marked as needing the Hub")
    if section in SECTION_INPUTS:
        SECTION_INPUTS[section](tmp_path)
    (tmp_path / "snippets.json").write_text(json.dumps([(block.line, block.code) for block in runnable]))
    (tmp_path / "run_snippets.py").write_text(SNIPPET_RUNNER, encoding="utf-8")
    printed = run_in_fresh_process(["run_snippets.py", "snippets.json", str(README)], cwd=tmp_path)
    assert printed.splitlines()[-1] == f"README.md:{runnable[-1].line} ran", printed[-2000:]


# --- training launch lines ------------------------------------------------------------------------------

# Small-data overrides of the kind the README documents (`--set data.options.num_train=1000`), per recipe, so
# that each launch line finishes in about a minute on 2 cores.
SMALL_DATA = {
    "demo": ["data.options.num_train=16", "data.options.num_eval=8", "data.options.num_test=8"],
    "tiny_mse_adapter": ["data.options.num_train=32", "stages.0.epochs=1"],
    "tiny_emoverse_m2se": [],
}


def as_run_here(command: str, output_dir: Path) -> tuple[dict[str, str], list[str]]:
    """The command's environment assignments and words, with the output folder moved to ``output_dir`` and the
    recipe's small-data overrides added; everything else as written."""
    words = shlex.split(command, comments=True)
    env = {}
    while "=" in words[0] and not words[0].startswith("-"):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    recipe = words[words.index("--recipe") + 1] if "--recipe" in words else "demo"
    if "--output_dir" in words:
        words[words.index("--output_dir") + 1] = str(output_dir)
    else:
        words += ["--output_dir", str(output_dir)]
    overrides = SMALL_DATA[recipe]
    if overrides and "--set" in words:
        position = words.index("--set") + 1
        words[position:position] = overrides
    elif overrides:
        words += ["--set", *overrides]
    return env, words


def launch_id(command: str) -> str:
    """`torchrun-tiny_mse_adapter-zero3`: launcher, recipe and DeepSpeed file, to name a failing line."""
    words = [word for word in shlex.split(command) if "=" not in word or word.startswith("-")]
    recipe = words[words.index("--recipe") + 1] if "--recipe" in words else "demo"
    deepspeed = [Path(words[words.index("--deepspeed") + 1]).stem] if "--deepspeed" in words else []
    return "-".join([Path(words[0]).name, recipe, *deepspeed])


@pytest.mark.slow
@pytest.mark.parametrize("command", TRAINING_COMMANDS, ids=launch_id)
def test_training_command_runs_as_written(command, tmp_path):
    output_dir = tmp_path / "out"
    assigned, words = as_run_here(command, output_dir)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # this venv's `python`, `torchrun`, `accelerate`
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    env.update(assigned)
    result = subprocess.run(words, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    # The first traceback is the cause; a launcher's own report of the failed worker follows it.
    first_error = result.stderr[result.stderr.find("Traceback") :][:3000]
    assert result.returncode == 0, f"{shlex.join(words)}\n{first_error}\n...\n{result.stderr[-1500:]}"
    assert "Held-out test metrics" in result.stdout, result.stdout[-2000:]
    metrics = json.loads((output_dir / "eval_results.json").read_text(encoding="utf-8"))
    assert metrics, "eval_results.json is empty"
    assert {"config.json", "README.md", "trainer_state.json"} <= {path.name for path in output_dir.iterdir()}
