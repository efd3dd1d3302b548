"""``python -m m2se.data convert --allow-pickle in.pkl --out dir``: a trusted pickle -> an Arrow folder.

The layout is detected from the unpickled object: a dict with train/valid/test is an MMSA pickle (regression
``DatasetDict``), a list of ``{"features", "label"}`` records an MSE-Adapter ERC pickle (classification
``Dataset``; the class list comes from ``--dataset`` or the file-name prefix ``meld``/``cherma``/``iemocap``).
The output folder is written with ``save_to_disk``; read it with ``datasets.load_from_disk(dir)``. It is
written next to ``--out`` and moved into place when complete; an existing converted dataset there is replaced
only with ``--overwrite``, and a file or a folder of anything else is never replaced. Bad input prints one
line and exits 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import datasets

from m2se.cli import CommandLineParser, add_debug_flag, run_command
from m2se.data.pickles import (
    ERC_LABEL_NAMES,
    erc_records_to_dataset,
    mmsa_to_dataset_dict,
    read_trusted_pickle,
)
from m2se.outputs import atomic_folder, check_output

KIND = "Arrow dataset folder (written by save_to_disk)"


def is_saved_dataset(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    if (path / "dataset_dict.json").is_file():
        return True
    return (path / "state.json").is_file() and (path / "dataset_info.json").is_file()


def _erc_dataset_name(path: Path, requested: str | None) -> str:
    if requested:
        return requested
    for name in ERC_LABEL_NAMES:
        if path.stem.lower().startswith(name):
            return name
    raise ValueError(
        f"cannot tell which ERC dataset {path.name} holds from its name; pass --dataset with one of "
        f"{sorted(ERC_LABEL_NAMES)}"
    )


def convert(
    input_path: Path,
    output_dir: Path,
    *,
    allow_pickle: bool,
    dataset: str | None = None,
    source: str | None = None,
    overwrite: bool = False,
) -> datasets.Dataset | datasets.DatasetDict:
    """Unpickle ``input_path`` (only with ``allow_pickle``), convert it and ``save_to_disk(output_dir)``.

    ``output_dir`` must be new, empty or (with ``overwrite``) a converted dataset; it is checked before the
    pickle is read and replaced only once the new folder is complete.
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    check_output(
        output_dir, inputs=[input_path], overwrite=overwrite, is_ours=is_saved_dataset, kind=KIND, folder=True
    )
    data = read_trusted_pickle(input_path, allow_pickle=allow_pickle)
    if isinstance(data, dict):
        converted = mmsa_to_dataset_dict(data, source=source or input_path.stem, origin=input_path)
    elif isinstance(data, list):
        name = _erc_dataset_name(input_path, dataset)
        if name not in ERC_LABEL_NAMES:
            raise ValueError(f"--dataset must be one of {sorted(ERC_LABEL_NAMES)}, got {name!r}")
        converted = erc_records_to_dataset(
            data, label_names=ERC_LABEL_NAMES[name], source=source or name, origin=input_path
        )
    else:
        raise ValueError(
            f"{input_path}: expected an MMSA dict or a list of ERC records, got {type(data).__name__}"
        )
    with atomic_folder(output_dir) as folder:
        converted.save_to_disk(str(folder))
    return converted


def _run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    datasets.disable_progress_bars()
    converted = convert(
        args.input,
        args.out,
        allow_pickle=args.allow_pickle,
        dataset=args.dataset,
        source=args.source,
        overwrite=args.overwrite,
    )
    print(f"wrote {args.out}: {converted}")
    return 0


def build_parser() -> CommandLineParser:
    parser = CommandLineParser(prog="python -m m2se.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    convert_parser = commands.add_parser("convert", help="convert a trusted pickle to an Arrow folder")
    convert_parser.add_argument("input", type=Path, help="MMSA or MSE-Adapter pickle")
    convert_parser.add_argument("--out", type=Path, required=True, help="output folder (save_to_disk)")
    convert_parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="required: confirms the pickle is trusted (unpickling can run code)",
    )
    convert_parser.add_argument(
        "--dataset",
        choices=sorted(ERC_LABEL_NAMES),
        help="ERC class list (default: from the file-name prefix)",
    )
    convert_parser.add_argument(
        "--source", help="value of the `source` column (default: file stem / dataset)"
    )
    convert_parser.add_argument(
        "--overwrite", action="store_true", help="replace --out when it holds a converted dataset"
    )
    add_debug_flag(convert_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
