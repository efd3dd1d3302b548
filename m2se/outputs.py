"""Writing outputs without losing a user's file.

Every command that writes a file or a folder goes through here:

* ``check_output`` refuses, before any work, an output that is one of the inputs (compared as files, so
  ``./a.jsonl``, an absolute path and a symbolic link all count) or a folder holding an input, an existing
  output that is not of the kind the command writes (a "foreign" file, never replaced), and an existing
  output of that kind unless the caller passed ``overwrite`` (``--overwrite``).
* ``atomic_file`` / ``atomic_folder`` write into a temporary sibling and move it into place with
  ``os.replace`` only when the writing finished, so an interrupted run never leaves a half-written output.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (or cannot be read): not the same existing file
        return False


def _holds(folder: Path, path: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def check_output(
    output: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike],
    overwrite: bool,
    is_ours: Callable[[Path], bool],
    kind: str,
    folder: bool = False,
) -> Path:
    """Refuse an output that would replace an input or a file this command did not write (see module doc).

    Args:
        output: the output path (``--out``).
        inputs: every file the command reads.
        overwrite: whether an existing output of the command's own ``kind`` may be replaced.
        is_ours: tells whether an existing path at ``output`` is of the command's ``kind`` (e.g. a JSONL file
            of EMT records, a folder written by ``save_to_disk``).
        kind: what the command writes, for the messages (e.g. ``"EMT JSONL file"``).
        folder: whether the output is a folder (an existing empty folder may then be used).

    Returns:
        ``output`` as a ``Path``.

    Raises:
        ValueError: naming the output, the reason and the way out.
    """
    output = Path(output)
    for source in map(Path, inputs):
        if _same_file(output, source):
            raise ValueError(
                f"--out {output} is the input file {source}: writing there would destroy the input; "
                "choose another output path"
            )
        if output.is_dir() and _holds(output, source):
            raise ValueError(
                f"--out {output} holds the input file {source}: replacing the folder would destroy the "
                "input; choose another output path"
            )
    if not output.exists() and not output.is_symlink():
        return output
    if folder and output.is_dir() and not any(output.iterdir()):
        return output
    if not is_ours(output):
        raise ValueError(
            f"--out {output} already exists and is not an {kind}; refusing to replace it "
            "(move it away or choose another output path)"
        )
    if not overwrite:
        raise ValueError(f"--out {output} already holds an {kind}; pass --overwrite to replace it")
    return output


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """Open a temporary text file next to ``path``; on success it replaces ``path`` in one ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file private (0600); the output gets the permissions of any new file.
        os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(descriptor, "w", encoding=encoding) as handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder next to ``path``; on success it takes the place of ``path`` (replacing it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(temporary, 0o777 & ~_umask())
        yield temporary
        if path.exists():
            # A folder cannot be os.replace'd over a non-empty one: move the old one aside first, so that at
            # every moment either the old or the new complete folder is at ``path``.
            previous = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, previous / path.name)
            os.replace(temporary, path)
            shutil.rmtree(previous)
        else:
            os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
