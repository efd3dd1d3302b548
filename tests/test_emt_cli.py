"""`python -m m2se.emt` / `python -m m2se.data`: the README's command sequence, outputs that never replace a
user's file, and bad input as one line on stderr with exit status 2."""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml
from conftest import REPO_ROOT
from test_data_conversations import ECF1_TEXT, ECF2_RECORD, _write_meld
from test_data_pickles import _erc_records, _mmsa_split
from test_facial import write_openface

import m2se
from m2se.data import load_emt
from m2se.data.__main__ import main as data_cli
from m2se.emt import builders
from m2se.emt.__main__ import main as emt_cli

MELD_ROWS = [
    '1,Great!,Joey,joy,positive,0,0,1,1,"a","b"',
    '2,"No, no!",Rachel,anger,negative,0,1,1,1,"a","b"',
    '3,Fine.,Ross,neutral,neutral,1,0,1,1,"a","b"',
    '4,Oh.,Monica,sadness,negative,1,1,1,1,"a","b"',
    '5,Wow!,Chandler,surprise,positive,2,0,1,1,"a","b"',
]


def _readme_commands(prefix: str) -> list[str]:
    block = re.search(r"## Data\n.*?```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text("utf-8"), re.S)
    return [line.split(" # ")[0].strip() for line in block.group(1).splitlines() if line.startswith(prefix)]


def _write_readme_inputs(root: Path) -> None:
    """The input files the README's Data commands name, small, at the paths they name."""
    (root / "MOSEI").mkdir()
    mmsa = {"train": _mmsa_split(3, 0), "valid": _mmsa_split(2, 10), "test": _mmsa_split(3, 20)}
    (root / "MOSEI" / "unaligned_50.pkl").write_bytes(pickle.dumps(mmsa))
    (root / "SIMS-V2").mkdir()
    (root / "SIMS-V2" / "ch-simsv2s.pkl").write_bytes(pickle.dumps(mmsa))
    for name in ("meld_train.pkl", "cherma_train.pkl", "iemocap_train.pkl"):
        (root / name).write_bytes(pickle.dumps(_erc_records(["0", "1", "2"])))
    (root / "MELD").mkdir()
    _write_meld(root / "MELD" / "train_sent_emo.csv", MELD_ROWS)
    (root / "ECF1").mkdir()
    (root / "ECF1" / "train.txt").write_text(ECF1_TEXT, encoding="utf-8")
    (root / "ECF2").mkdir()
    (root / "ECF2" / "Subtask_2_test.json").write_text(json.dumps([ECF2_RECORD]), encoding="utf-8")
    (root / "mosei_train.csv").write_text("id,text,score\nm1,good,1.2\nm2,bad,-0.8\nm3,meh,0\n", "utf-8")
    (root / "mosei_reasons.csv").write_text("id,reason\nm1,She smiles.\nm2,He frowns.\n", "utf-8")
    (root / "fer_labels.csv").write_text("id,emotion\nf1,joy\nf2,surprise\n", "utf-8")
    (root / "openface").mkdir()
    write_openface(root / "openface" / "f1.csv", [{"frame": 1, "AU06_r": 2.0, "AU12_r": 2.5}])
    write_openface(root / "openface" / "f2.csv", [{"frame": 3, "AU01_r": 1.5, "AU02_r": 1.5, "AU26_c": 1}])
    shutil.copytree(Path(m2se.__file__).parent / "resources", root / "m2se" / "resources")


def test_readme_data_commands_run_as_written(tmp_path, monkeypatch, capsys):
    _write_readme_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    convert_commands = _readme_commands("python -m m2se.data ")
    emt_commands = _readme_commands("python -m m2se.emt ")
    assert len(convert_commands) == 5 and len(emt_commands) == 8
    # The stage files name exactly the EMT files that the README's build commands write.
    written = {shlex.split(command)[-1] for command in emt_commands if " mix " not in command}
    for stage in ("stage1", "stage2"):
        stage_files = yaml.safe_load((tmp_path / "m2se" / "resources" / f"{stage}.yaml").read_text("utf-8"))
        assert {path for paths in stage_files["data"].values() for path in paths} <= written, stage
    for command in convert_commands:
        assert data_cli(shlex.split(command)[3:]) == 0, command
    for command in emt_commands:
        assert emt_cli(shlex.split(command)[3:]) == 0, command
    printed = capsys.readouterr().out
    assert "stage1: wrote " in printed and "stage2: wrote " in printed
    assert datasets.load_from_disk("data/mosei")["validation"].num_rows == 2
    stage1, stage2 = load_emt("emt/stage1.jsonl"), load_emt("emt/stage2.jsonl")
    assert set(stage1["task"]) == {"msa", "fer", "er"}
    # Stage 2 reads the ECPE file the `ecf` command wrote and never reuses a stage-1 sample.
    assert {"er", "eri", "ecpe"} <= set(stage2["task"])
    assert not set(stage1["id"]) & set(stage2["id"])
    assert len(load_emt("emt/ecf_ecpe_train.jsonl")) == stage2["task"].count("ecpe")


def _run(module: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_meld_out_equal_to_its_csv_is_refused_and_the_csv_kept(tmp_path):
    csv_path = _write_meld(tmp_path / "X.csv", MELD_ROWS)
    before = csv_path.read_bytes()
    result = _run("m2se.emt", "meld", "--csv", "X.csv", "--media-root", "m", "--out", "X.csv", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "python -m m2se.emt: error: --out X.csv is the input file X.csv: writing there would destroy the "
        "input; choose another output path\n"
    )
    assert csv_path.read_bytes() == before
    # The same file through another spelling of its path or a symbolic link (even with --overwrite).
    (tmp_path / "link.jsonl").symlink_to(csv_path)
    for out in (str(csv_path), "./X.csv", "link.jsonl"):
        with pytest.raises(SystemExit) as refused:
            emt_cli(["meld", "--csv", "X.csv", "--media-root", "m", "--out", out, "--overwrite"])
        assert refused.value.code == 2
    assert csv_path.read_bytes() == before


def test_mix_out_equal_to_a_data_file_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    records = [{"id": f"msa/x/{i}", "task": "msa", "query": "q", "response": "Positive."} for i in range(4)]
    builders.write_jsonl(records, "in.jsonl")
    before = Path("in.jsonl").read_bytes()
    Path("stage.yaml").write_text("name: s\nrates: {msa: 1.0}\n", encoding="utf-8")
    with pytest.raises(SystemExit) as refused:
        emt_cli(
            ["mix", "--stage", "stage.yaml", "--data", "msa=in.jsonl", "--out", "in.jsonl", "--overwrite"]
        )
    assert refused.value.code == 2
    assert capsys.readouterr().err == (
        "python -m m2se.emt: error: --out in.jsonl is the input file in.jsonl: writing there would destroy "
        "the input; choose another output path\n"
    )
    assert Path("in.jsonl").read_bytes() == before
    assert emt_cli(["mix", "--stage", "stage.yaml", "--data", "msa=in.jsonl", "--out", "mixed.jsonl"]) == 0
    assert sorted(load_emt("mixed.jsonl")["id"]) == sorted(r["id"] for r in records)


def test_existing_outputs_foreign_refused_own_replaced_only_with_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write_meld(Path("meld.csv"), MELD_ROWS)
    command = ["meld", "--csv", "meld.csv", "--media-root", "m", "--out", "out.jsonl"]
    Path("out.jsonl").write_text("my notes\n", encoding="utf-8")
    for extra in ([], ["--overwrite"]):
        with pytest.raises(SystemExit):
            emt_cli([*command, *extra])
        assert capsys.readouterr().err == (
            "python -m m2se.emt: error: --out out.jsonl already exists and is not an EMT JSONL file; "
            "refusing to replace it (move it away or choose another output path)\n"
        )
    assert Path("out.jsonl").read_text(encoding="utf-8") == "my notes\n"
    Path("out.jsonl").unlink()
    assert emt_cli(command) == 0
    first = Path("out.jsonl").read_bytes()
    with pytest.raises(SystemExit):
        emt_cli(command)
    assert capsys.readouterr().err == (
        "python -m m2se.emt: error: --out out.jsonl already holds an EMT JSONL file; pass --overwrite to "
        "replace it\n"
    )
    assert emt_cli([*command, "--overwrite"]) == 0 and Path("out.jsonl").read_bytes() == first
    Path("folder.jsonl").mkdir()
    with pytest.raises(SystemExit):
        emt_cli([*command[:-1], "folder.jsonl", "--overwrite"])
    assert "--out folder.jsonl already exists and is not an EMT JSONL file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        emt_cli([*command[:-1], "out.csv"])
    assert capsys.readouterr().err == (
        "python -m m2se.emt: error: --out out.csv: EMT records are written as JSON Lines; expected a path "
        "ending in .jsonl\n"
    )


def test_write_jsonl_is_atomic(tmp_path):
    out = tmp_path / "records.jsonl"
    builders.write_jsonl([{"id": "old", "query": "q", "response": "r"}], out)
    before = out.read_bytes()

    def failing():
        yield {"id": "new", "query": "q", "response": "r"}
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        builders.write_jsonl(failing(), out)
    assert out.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["records.jsonl"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_convert_refuses_existing_dataset_unless_overwrite_and_never_a_foreign_folder(tmp_path, capsys):
    pickle_path = tmp_path / "meld_train.pkl"
    pickle_path.write_bytes(pickle.dumps(_erc_records(["joy", "anger"])))
    out = tmp_path / "data" / "mosei"
    assert data_cli(["convert", "--allow-pickle", str(pickle_path), "--out", str(out)]) == 0
    saved = sorted(path.name for path in out.iterdir())
    with pytest.raises(SystemExit) as refused:
        data_cli(["convert", "--allow-pickle", str(pickle_path), "--out", str(out)])
    assert refused.value.code == 2
    assert capsys.readouterr().err == (
        f"python -m m2se.data: error: --out {out} already holds an Arrow dataset folder (written by "
        "save_to_disk); pass --overwrite to replace it\n"
    )
    assert sorted(path.name for path in out.iterdir()) == saved
    assert data_cli(["convert", "--allow-pickle", str(pickle_path), "--out", str(out), "--overwrite"]) == 0
    assert datasets.load_from_disk(str(out)).num_rows == 2
    assert sorted(path.name for path in out.parent.iterdir()) == ["mosei"]  # no temporary folder left

    empty = tmp_path / "empty"
    empty.mkdir()
    assert data_cli(["convert", "--allow-pickle", str(pickle_path), "--out", str(empty)]) == 0
    assert datasets.load_from_disk(str(empty)).num_rows == 2

    foreign = tmp_path / "papers"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SystemExit):
        data_cli(["convert", "--allow-pickle", str(pickle_path), "--out", str(foreign), "--overwrite"])
    assert "already exists and is not an Arrow dataset folder" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "mine"
    with pytest.raises(SystemExit):
        data_cli(["convert", "--allow-pickle", str(pickle_path), "--out", str(tmp_path), "--overwrite"])
    assert capsys.readouterr().err == (
        f"python -m m2se.data: error: --out {tmp_path} holds the input file {pickle_path}: replacing the "
        "folder would destroy the input; choose another output path\n"
    )


def test_convert_subprocess_non_pickle_is_one_line_and_debug_shows_the_traceback(tmp_path):
    not_a_pickle = tmp_path / "meld_train.pkl"
    not_a_pickle.write_text("id,text\n1,hello\n", encoding="utf-8")
    result = _run("m2se.data", "convert", "--allow-pickle", not_a_pickle, "--out", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"python -m m2se.data: error: {not_a_pickle} is not a readable pickle (UnpicklingError: could not "
        "find MARK); expected an MMSA or MSE-Adapter .pkl file\n"
    )
    assert not (tmp_path / "out").exists()
    debug = _run(
        "m2se.data", "convert", "--allow-pickle", not_a_pickle, "--out", "out", "--debug", cwd=tmp_path
    )
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.rstrip().endswith("expected an MMSA or MSE-Adapter .pkl file")


def test_usage_errors_are_one_line(tmp_path):
    result = _run("m2se.emt", "meld", "--csv", "x.csv", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "python -m m2se.emt meld: error: the following arguments are required: --out, --media-root\n"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "Sr No.,Utterance\n1,caf\xe9\n".encode("cp1252"),
            "{path} is not UTF-8 text (byte 0xe9 on line 2); expected a MELD CSV encoded as UTF-8: "
            "re-save it as UTF-8",
        ),
        (b"", "{path} is empty; expected a MELD CSV with a header row"),
    ],
)
def test_meld_csv_encoding_and_empty_name_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "train_sent_emo.csv"
    path.write_bytes(content)
    with pytest.raises(SystemExit) as refused:
        emt_cli(["meld", "--csv", str(path), "--media-root", "m", "--out", str(tmp_path / "o.jsonl")])
    assert refused.value.code == 2
    assert capsys.readouterr().err == f"python -m m2se.emt: error: {message.format(path=path)}\n"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "t.csv",
            "id,emotion\nf1,jo\xff\n".encode("cp1252"),
            "{path} is not UTF-8 text (byte 0xff on line 2); expected a table with the columns id, "
            "emotion encoded as UTF-8: re-save it as UTF-8",
        ),
        ("t.csv", b"", "{path} is empty; expected a table with the columns id, emotion with a header row"),
        ("t.jsonl", b"\n", "{path} is empty; expected a table with the columns id, emotion"),
    ],
)
def test_builder_tables_encoding_and_empty_name_the_file(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SystemExit):
        emt_cli(
            [
                *("fer", "--table", str(path), "--openface-dir", str(tmp_path), "--media-root", "m"),
                *("--out", str(tmp_path / "o.jsonl")),
            ]
        )
    assert capsys.readouterr().err == f"python -m m2se.emt: error: {message.format(path=path)}\n"


def test_fer_truncated_or_non_numeric_openface_csv_exits_2_naming_the_file(tmp_path):
    (tmp_path / "openface").mkdir()
    csv_path = write_openface(
        tmp_path / "openface" / "f1.csv",
        [{"frame": 1, "AU06_r": 0.2}, {"frame": 2, "AU06_r": 2.0, "AU12_r": 2.5}],
    )
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    csv_path.write_text("\n".join([*lines[:2], lines[2][:30]]), encoding="utf-8")  # cut inside frame 2
    (tmp_path / "labels.csv").write_text("id,emotion\nf1,joy\n", encoding="utf-8")
    command = ["fer", "--table", "labels.csv", "--openface-dir", "openface", "--media-root", "m"]
    result = _run("m2se.emt", *command, "--out", "fer.jsonl", cwd=tmp_path)
    assert result.returncode == 2 and not (tmp_path / "fer.jsonl").exists()
    assert result.stderr == (
        "python -m m2se.emt: error: openface/f1.csv line 3 has no value for AU06_r, AU12_r, AU26_r, AU01_c "
        "and 6 more: the file looks truncated or damaged (expected a number in every frame, success, "
        "confidence and AU column)\n"
    )
    csv_path.write_text("\n".join(lines).replace(", 2.0,", ", high,", 1), encoding="utf-8")
    result = _run("m2se.emt", *command, "--out", "fer.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "python -m m2se.emt: error: openface/f1.csv line 3: AU06_r is 'high'; expected a number in every "
        "frame, success, confidence and AU column\n"
    )
