"""``python -m m2se.features extract --manifest clips.csv --out DIR``: clips -> an MSE-Adapter feature folder.

``--audio`` is ``egemaps`` (default), ``compare``, ``librosa``, a transformers audio model id or folder, or
``none``; ``--video`` is ``none`` (default) or a vision model id or folder. The folder is written next to
``--out`` and moved into place when complete; an existing folder is replaced only when it is an earlier output
of this command. Bad input prints one line and exits 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from m2se.cli import CommandLineParser, add_debug_flag, run_command
from m2se.features.extract import REPORT_NAME, extract_features


def _modality(value: str) -> str | None:
    return None if value.lower() == "none" else value


def _run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dataset, report = extract_features(
        args.manifest,
        args.out,
        audio_backend=_modality(args.audio),
        video_encoder=_modality(args.video),
        num_proc=args.num_proc,
        pool_windows=args.pool_windows or None,
        standardize=not args.no_standardize,
        fps=args.fps,
        crop_face=not args.no_face_crop,
        max_seconds=args.max_seconds,
        cache_dir=args.cache_dir,
    )
    splits = ", ".join(f"{name} {len(part)}" for name, part in dataset.items())
    counts = "; ".join(f"{name}: {count}" for name, count in report.counts().items())
    print(f"wrote {args.out} ({splits}); {counts}; details in {Path(args.out) / REPORT_NAME}")
    return 0


def build_parser() -> CommandLineParser:
    parser = CommandLineParser(prog="python -m m2se.features", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    extract = commands.add_parser("extract", help="extract the features of a manifest of clips")
    extract.add_argument(
        "--manifest", type=Path, required=True, help="CSV with columns path,text,label,split"
    )
    extract.add_argument("--out", type=Path, required=True, help="output folder (an Arrow DatasetDict)")
    extract.add_argument(
        "--audio", default="egemaps", help="egemaps | compare | librosa | an audio model id or folder | none"
    )
    extract.add_argument("--video", default="none", help="none | a vision model id or folder (AutoModel)")
    extract.add_argument("--num_proc", type=int, default=1, help="worker processes (datasets.map)")
    extract.add_argument(
        "--pool_windows",
        type=int,
        default=8,
        help="audio frames averaged into this many windows (0: keep all)",
    )
    extract.add_argument(
        "--no_standardize", action="store_true", help="keep raw audio values (no train-split statistics)"
    )
    extract.add_argument("--fps", type=float, default=1.0, help="video frames sampled per second")
    extract.add_argument(
        "--no_face_crop", action="store_true", help="encode whole frames (no face detection)"
    )
    extract.add_argument("--max_seconds", type=float, default=600.0, help="longer clips are unreadable")
    extract.add_argument(
        "--cache_dir", type=Path, help="datasets cache for the extraction (default: HF cache)"
    )
    add_debug_flag(extract)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
