"""Reading text files and tables with errors that name the file: wrong encoding, empty, malformed.

Every loader of a user's text file (MELD CSVs, ECF files, EMT records, builder tables, OpenFace CSVs) reads
through here, so that a cp1252 file or an empty file is reported as ``<path> is not UTF-8 text ...`` or
``<path> is empty ...`` rather than as a codec or parser error that does not say which file it was.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd


def _not_utf8(path: Path, what: str) -> ValueError:
    # Decoders that read in chunks (pandas) report offsets within a chunk: locate the byte in the whole file.
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        where = f"byte 0x{data[error.start]:02x} on line {line}"
    else:
        where = "an invalid byte"
    return ValueError(
        f"{path} is not UTF-8 text ({where}); expected {what} encoded as UTF-8: re-save it as UTF-8"
    )


def read_text(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of ``path``, or a ValueError naming it and ``what`` it should be (``"an ECF 2.0 JSON
    file"``)."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _not_utf8(path, what) from None


def read_csv(path: str | os.PathLike, what: str, **options: Any) -> pd.DataFrame:
    """``pandas.read_csv(path, encoding="utf-8", **options)``; errors name ``path`` and ``what`` it should be.

    Raises:
        ValueError: the file is not UTF-8, is empty (not even a header) or is not a well-formed table.
    """
    path = Path(path)
    try:
        return pd.read_csv(path, encoding="utf-8", **options)
    except UnicodeDecodeError:
        raise _not_utf8(path, what) from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty; expected {what} with a header row") from None
    except pd.errors.ParserError as error:
        raise ValueError(f"{path} is not well-formed; expected {what}: {error}") from None


def read_table(path: str | os.PathLike, columns: Sequence[str]) -> pd.DataFrame:
    """A ``.csv``, ``.tsv``, ``.json`` (list of objects) or ``.jsonl`` table with at least ``columns``.

    Every column is read as text (ids such as ``0001`` keep their zeros).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    what = f"a table with the columns {', '.join(columns)}"
    if path.suffix in (".csv", ".tsv"):
        table = read_csv(
            path, what, sep="\t" if path.suffix == ".tsv" else ",", dtype=str, keep_default_na=False
        )
    elif path.suffix in (".json", ".jsonl"):
        text = read_text(path, what)
        if not text.strip():
            raise ValueError(f"{path} is empty; expected {what}")
        try:
            table = pd.read_json(io.StringIO(text), lines=path.suffix == ".jsonl", dtype=False).astype(str)
        except ValueError as error:
            raise ValueError(f"{path} is not well-formed; expected {what}: {error}") from None
    else:
        raise ValueError(f"tables must be .csv, .tsv, .json or .jsonl, got {path}")
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; it has {list(table.columns)}")
    return table
