"""``python -m m2se.data convert --allow-pickle in.pkl --out dir``: a trusted pickle -> an Arrow folder.

The layout is detected from the unpickled object: a dict with train/valid/test is an MMSA pickle (regression
``DatasetDict``), a list of ``{"features", "label"}`` records an MSE-Adapter ERC pickle (classification
``Dataset``; the class list comes from ``--dataset`` or the file-name prefix ``meld``/``cherma``/``iemocap``).
The output folder is written with ``save_to_disk``; read it with ``datasets.load_from_disk(dir)``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import datasets

from m2se.data.pickles import (
    ERC_LABEL_NAMES,
    erc_records_to_dataset,
    mmsa_to_dataset_dict,
    read_trusted_pickle,
)


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
) -> datasets.Dataset | datasets.DatasetDict:
    """Unpickle ``input_path`` (only with ``allow_pickle``), convert it and ``save_to_disk(output_dir)``."""
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
    converted.save_to_disk(str(output_dir))
    return converted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m2se.data", description=__doc__.splitlines()[0])
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    datasets.disable_progress_bars()
    try:
        converted = convert(
            args.input, args.out, allow_pickle=args.allow_pickle, dataset=args.dataset, source=args.source
        )
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")
    print(f"wrote {args.out}: {converted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
