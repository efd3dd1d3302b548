"""``python -m m2se.emt <source> ... --out records.jsonl``: build EMT records, or mix a training stage.

Subcommands: ``meld`` (ER, MSA), ``ecf`` (ECPE from ECF 2.0 JSON or ECF 1.0 text), ``mosei`` (MSA from an
(id, text, score) table), ``eri`` (an (id, reason) table), ``fer`` (an (id, emotion) table + OpenFace CSVs)
and ``mix`` (a stage YAML). Each prints what it wrote, per task, and what it skipped.

The output is a new ``.jsonl`` file, written atomically. An output that is one of the inputs or a file that is
not EMT JSONL is refused; an existing EMT JSONL output is replaced only with ``--overwrite``. Bad input prints
one line and exits 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import datasets

from m2se.cli import CommandLineParser, add_debug_flag, run_command
from m2se.data.conversations import load_ecf1, load_ecf2, load_meld_csv
from m2se.data.emt import load_emt
from m2se.data.schema import EMT_FEATURES
from m2se.data.tables import read_table
from m2se.emt import builders
from m2se.emt.mix import build_stage, load_stage
from m2se.outputs import check_output


def _task_paths(values: Sequence[str]) -> dict[str, list[str]]:
    overrides: dict[str, list[str]] = {}
    for value in values:
        task, sep, path = value.partition("=")
        if not sep or not task or not path:
            raise ValueError(f"--data expects TASK=PATH, got {value!r}")
        overrides.setdefault(task, []).append(path)
    return overrides


def _build(args: argparse.Namespace) -> builders.BuildResult:
    if args.command == "meld":
        tasks = [task for chunk in args.tasks for task in chunk.split(",") if task]
        return builders.meld_records(
            load_meld_csv(args.csv), args.media_root, tasks=tasks, source=args.source or Path(args.csv).stem
        )
    if args.command == "ecf":
        path = Path(args.json or args.ecf1)
        conversations = load_ecf2(path) if args.json else load_ecf1(path)
        return builders.ecpe_records(conversations, args.media_root, source=args.source or path.stem)
    if args.command == "mosei":
        table = read_table(args.table, ("id", "text", "score"))
        return builders.msa_records(
            table,
            args.media_root,
            source=args.source or Path(args.table).stem,
            non_negative_is_positive=args.non_negative_positive,
            media_suffix=args.media_suffix,
        )
    if args.command == "eri":
        table = read_table(args.table, ("id", "reason"))
        return builders.eri_records(
            table,
            args.media_root,
            source=args.source or Path(args.table).stem,
            media_suffix=args.media_suffix,
        )
    table = read_table(args.table, ("id", "emotion"))
    return builders.fer_records(
        table,
        args.openface_dir,
        args.media_root,
        source=args.source or Path(args.table).stem,
        image_pattern=args.image_pattern,
        intensity_threshold=args.intensity_threshold,
        min_confidence=args.min_confidence,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = CommandLineParser(prog="python -m m2se.emt", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str, media: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--out", type=Path, required=True, help="output JSONL file (new, or see --overwrite)"
        )
        sub.add_argument(
            "--overwrite", action="store_true", help="replace --out when it already holds EMT records"
        )
        add_debug_flag(sub)
        if media:
            sub.add_argument(
                "--media-root", required=True, help="folder of the videos/images, as seen in training"
            )
            sub.add_argument("--source", help="middle part of the record ids (default: input file stem)")
        return sub

    meld = command("meld", "ER and MSA records from a MELD CSV")
    meld.add_argument("--csv", required=True)
    meld.add_argument("--tasks", nargs="+", default=["er"], help="er, msa or both (comma or space separated)")
    ecf = command("ecf", "ECPE records from ECF 2.0 JSON (Subtask 2) or ECF 1.0 text")
    source = ecf.add_mutually_exclusive_group(required=True)
    source.add_argument("--json", help="ECF 2.0 JSON, e.g. Subtask_2_test.json")
    source.add_argument("--ecf1", help="ECF 1.0 text file, e.g. train.txt")
    mosei = command("mosei", "MSA records from an (id, text, score) table (.csv/.tsv/.json/.jsonl)")
    mosei.add_argument("--table", required=True)
    mosei.add_argument(
        "--non-negative-positive",
        action="store_true",
        help="N/N variant: score >= 0 is Positive (default: score 0 is skipped)",
    )
    mosei.add_argument("--media-suffix", default=".mp4")
    eri = command("eri", "ERI records from an (id, reason) table")
    eri.add_argument("--table", required=True)
    eri.add_argument("--media-suffix", default=".mp4")
    fer = command("fer", "FER records from an (id, emotion) table and OpenFace CSVs <openface-dir>/<id>.csv")
    fer.add_argument("--table", required=True)
    fer.add_argument("--openface-dir", required=True)
    fer.add_argument(
        "--image-pattern",
        default=builders.DEFAULT_FER_IMAGE_PATTERN,
        help="peak-frame image under --media-root, formatted with id, frame, face_id",
    )
    fer.add_argument("--intensity-threshold", type=float, default=0.8)
    fer.add_argument("--min-confidence", type=float, default=0.0)
    mix = command("mix", "draw a training stage from EMT files (stage YAML)", media=False)
    mix.add_argument("--stage", required=True, type=Path, help="stage YAML (see m2se.emt.mix)")
    mix.add_argument(
        "--data",
        nargs="*",
        default=[],
        metavar="TASK=PATH",
        help="replace the stage's files for a task (repeat TASK=PATH for several files)",
    )
    mix.add_argument("--exclude", nargs="*", metavar="PATH", help="replace the stage's exclude files")
    mix.add_argument("--budget", type=int, help="replace the stage's budget")
    mix.add_argument("--seed", type=int, help="replace the stage's seed")
    return parser


def _inputs(args: argparse.Namespace) -> list[Path]:
    """Every file the command reads, so that ``--out`` can never be one of them."""
    if args.command == "meld":
        return [Path(args.csv)]
    if args.command == "ecf":
        return [Path(args.json or args.ecf1)]
    if args.command == "fer":
        return [Path(args.table), *sorted(Path(args.openface_dir).glob("*.csv"))]
    return [Path(args.table)]


def _is_emt_jsonl(path: Path) -> bool:
    try:
        load_emt(path)
    except (ValueError, OSError):
        return False
    return True


def _checked_output(args: argparse.Namespace, inputs: Sequence[str | Path]) -> Path:
    out = check_output(
        args.out, inputs=inputs, overwrite=args.overwrite, is_ours=_is_emt_jsonl, kind="EMT JSONL file"
    )
    if out.suffix != ".jsonl":
        raise ValueError(
            f"--out {out}: EMT records are written as JSON Lines; expected a path ending in .jsonl"
        )
    return out


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    datasets.disable_progress_bars()
    if args.command == "mix":
        spec = load_stage(args.stage).with_overrides(
            data=_task_paths(args.data), exclude=args.exclude, budget=args.budget, seed=args.seed
        )
        data_files = [path for paths in spec.data.values() for path in paths]
        out = _checked_output(args, [args.stage, *data_files, *spec.exclude])
        mixture, counts = build_stage(spec)
        written = builders.write_jsonl(
            (
                {key: row[key] for key in EMT_FEATURES if row.get(key) not in (None, [])}
                for row in mixture.to_list()
            ),
            out,
        )
        per_task = ", ".join(f"{task} {count}" for task, count in counts.items())
        print(f"{spec.name}: wrote {written} samples to {out} ({per_task})")
        return 0
    out = _checked_output(args, _inputs(args))
    result = _build(args)
    builders.write_jsonl(result.records, out)
    print(f"wrote {out}: {result.summary()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
