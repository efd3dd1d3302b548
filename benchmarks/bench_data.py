"""Time the EMT builder over all of MELD (3 splits) and ECF 2.0, and the mixing of a 15,000-sample stage.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_data.py --data-dir ../shared/data --repeats 5

Each phase reads the source files, builds the records and writes JSONL (as `python -m m2se.emt` does); the
mix phase loads the built JSONL files and draws a stage of 15,000 samples. Prints the median, min and max
wall-clock seconds over the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import datasets

from m2se.data import load_ecf1, load_ecf2, load_emt, load_meld_csv
from m2se.emt import builders
from m2se.emt.mix import mix_stage

MELD_SPLITS = ("train_sent_emo", "dev_sent_emo", "test_sent_emo")


def build_meld(data_dir: Path, out_dir: Path) -> int:
    total = 0
    for split in MELD_SPLITS:
        meld = load_meld_csv(data_dir / "meld" / f"{split}.csv")
        result = builders.meld_records(meld, f"MELD/{split}", tasks=("er", "msa"), source=split)
        total += builders.write_jsonl(result.records, out_dir / f"meld_{split}.jsonl")
    return total


def build_ecf(data_dir: Path, out_dir: Path) -> int:
    sources = {
        "ecf2_subtask2_test": load_ecf2(data_dir / "ecf2" / "Subtask_2_test.json"),
        "ecf2_subtask1_train": load_ecf2(data_dir / "ecf2" / "Subtask_1_train.json"),
        "ecf1_train": load_ecf1(data_dir / "ecf1" / "train.txt"),
    }
    total = 0
    for name, conversations in sources.items():
        result = builders.ecpe_records(conversations, f"ECF/{name}", source=name)
        total += builders.write_jsonl(result.records, out_dir / f"{name}.jsonl")
    return total


def mix_15000(out_dir: Path) -> int:
    records = load_emt(
        sorted(str(path) for path in out_dir.glob("*.jsonl") if not path.name.startswith("mix"))
    )
    tasks = records[:]["task"]
    pools = {
        task: records.select([i for i, name in enumerate(tasks) if name == task])
        for task in ("msa", "er", "ecpe")
    }
    mixture, _ = mix_stage(pools, {"msa": 1.0, "er": 0.2, "ecpe": 1.0}, 15000, seed=0)
    return builders.write_jsonl(mixture.to_list(), out_dir / "mix_stage.jsonl")


def timed(phase: Callable[[], int], repeats: int) -> tuple[list[float], int]:
    seconds, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = phase()
        seconds.append(time.perf_counter() - start)
    return seconds, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        phases = {
            "MELD 3 splits -> ER + MSA JSONL": lambda: build_meld(args.data_dir, out_dir),
            "ECF 2.0 (Subtask 2 test, Subtask 1 train) + ECF 1.0 train -> ECPE JSONL": lambda: build_ecf(
                args.data_dir, out_dir
            ),
            "load built JSONL + mix a 15,000-sample stage + write": lambda: mix_15000(out_dir),
        }
        print("| phase | records | median s | min s | max s |\n|---|---|---|---|---|")
        for name, phase in phases.items():
            seconds, count = timed(phase, args.repeats)
            median = statistics.median(seconds)
            print(f"| {name} | {count:,} | {median:.2f} | {min(seconds):.2f} | {max(seconds):.2f} |")


if __name__ == "__main__":
    main()
