"""Checkpoints of MSE-Adapter: `save_pretrained` writes the adapter only (or everything), `from_pretrained`
loads either kind and checks every weights file before any backbone loads.

Hub remote code: this module imports only the standard library, torch, transformers and the other
`*_mse_adapter.py` modules.
"""

from __future__ import annotations

import json
import os
import re
import struct

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.modeling_utils import load_state_dict
from transformers.utils import CONFIG_NAME, SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, cached_file

try:
    from .pipeline_mse_adapter import custom_pipelines
except ImportError:  # imported as a top-level module (installed package or checkout), not as Hub code
    from pipeline_mse_adapter import custom_pipelines

_BACKBONE_KWARG_NAMES = ("dtype", "device_map", "attn_implementation")

HUB_KWARG_NAMES = (
    "cache_dir",
    "force_download",
    "local_files_only",
    "token",
    "revision",
    "subfolder",
    "proxies",
)
# A Hub model id: "name" or "namespace/name", each part of letters, digits, "_", "-", "." that neither starts
# nor ends with "-" or "." (huggingface_hub's rule, which would otherwise fail deep inside the download code).
_HUB_ID_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_HUB_MODEL_ID = re.compile(rf"(?:{_HUB_ID_PART}/)?{_HUB_ID_PART}")


def check_folder_or_hub_id(path: str | os.PathLike, description: str, remedy: str = "") -> None:
    """Raise a ValueError when `path` is neither an existing folder nor shaped like a Hub model id.

    `description` names where the path comes from (an argument, a config field); `remedy` ends the message.
    """
    path = os.fspath(path)
    if os.path.isdir(path) or (_HUB_MODEL_ID.fullmatch(path) and ".." not in path and "--" not in path):
        return
    raise ValueError(
        f"{description} is {path!r}: neither an existing folder nor a Hub model id ('name' or "
        f"'namespace/name'){remedy}"
    )


def check_json_file(path: str, expected: str) -> None:
    """Raise a ValueError naming `path` and where its JSON breaks (line, column) when it is not valid JSON.

    A missing file is left to the loader, whose message names it.
    """
    try:
        with open(path, encoding="utf-8") as file:
            json.load(file)
    except FileNotFoundError:
        return
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); expected "
            f"{expected}"
        ) from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error.reason}); expected {expected}") from None


def read_safetensors_header(weights_file: str) -> dict[str, dict]:
    """The tensor entries of a safetensors file's header, checked against the file size without reading any
    tensor.

    The format is an 8-byte little-endian header length, a JSON header mapping each tensor name to its dtype,
    shape and `data_offsets` into the data bytes that follow, then exactly those data bytes. A truncated
    download, an empty file or another format raises a ValueError naming the file instead of a `MemoryError`
    (a random header length) or an error from inside the reader.
    """
    file_size = os.path.getsize(weights_file)

    def invalid(reason: str) -> ValueError:
        return ValueError(
            f"{weights_file} is not a valid safetensors file ({reason}); re-download or re-save the "
            "checkpoint"
        )

    if file_size < 8:
        raise invalid(f"{file_size} bytes, shorter than the 8-byte header length")
    with open(weights_file, "rb") as weights:
        (header_length,) = struct.unpack("<Q", weights.read(8))
        if header_length > file_size - 8:
            raise invalid(f"its header length {header_length} exceeds the file size {file_size}")
        try:
            header = json.loads(weights.read(header_length))
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            raise invalid("its header is not JSON") from None
    if not isinstance(header, dict):
        raise invalid(f"its header is a JSON {type(header).__name__}, not an object")
    header.pop("__metadata__", None)
    data_size = file_size - 8 - header_length
    data_end = 0
    for name, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(offset, int) for offset in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise invalid(f"tensor {name!r} has data_offsets {offsets} outside the {data_size} data bytes")
        data_end = max(data_end, offsets[1])
    if data_end != data_size:
        raise invalid(f"the tensors cover {data_end} of its {data_size} data bytes")
    return header


def saved_with_language_model(pretrained_model_name_or_path: str | os.PathLike, hub_kwargs: dict) -> bool:
    """True when the folder's weights include the backbone (sharded, or keys under `language_model.`).

    Every weights file's header is checked here, before any backbone is loaded: a missing, truncated or
    corrupted file raises a ValueError naming it.
    """
    index_file = cached_file(
        pretrained_model_name_or_path,
        SAFE_WEIGHTS_INDEX_NAME,
        _raise_exceptions_for_missing_entries=False,
        **hub_kwargs,
    )
    if index_file is not None:
        try:
            with open(index_file, encoding="utf-8") as index:
                shard_names = sorted(set(json.load(index)["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                f"{index_file} is not a valid safetensors index (expected JSON with a 'weight_map' "
                f"of tensor name -> shard file): {error!r}"
            ) from None
        for shard_name in shard_names:
            read_safetensors_header(cached_file(pretrained_model_name_or_path, shard_name, **hub_kwargs))
        return True
    weights_file = cached_file(
        pretrained_model_name_or_path,
        SAFE_WEIGHTS_NAME,
        _raise_exceptions_for_missing_entries=False,
        **hub_kwargs,
    )
    if weights_file is None:
        raise ValueError(
            f"{os.fspath(pretrained_model_name_or_path)} holds neither {SAFE_WEIGHTS_NAME} nor "
            f"{SAFE_WEIGHTS_INDEX_NAME}; expected a checkpoint written by "
            "MSEAdapterForCausalLM.save_pretrained"
        )
    return any(name.startswith("language_model.") for name in read_safetensors_header(weights_file))


class MSEAdapterCheckpointMixin:
    """`save_pretrained` / `from_pretrained` of `MSEAdapterForCausalLM` (mixed in before `PreTrainedModel`):
    adapter-only folders by default, loaded on top of a backbone that is passed, saved with them or named by
    `config.base_model_name_or_path`."""

    def save_pretrained(self, save_directory: str | os.PathLike, save_full_model: bool = False, **kwargs):
        """Write the config, the remote code and the adapter weights (a few MB at d = 4096).

        With `save_full_model=True` the backbone weights are written too and the folder no longer needs
        `base_model_name_or_path`.
        """
        if not save_full_model:
            state_dict = kwargs.pop("state_dict", None) or self.state_dict()
            kwargs["state_dict"] = {
                name: value for name, value in state_dict.items() if name.startswith("adapter.")
            }
        # register_for_auto_class keeps one auto class; users load with AutoModel as well.
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map["AutoModel"] = f"{type(self).__module__.split('.')[-1]}.{type(self).__name__}"
        self.config.auto_map = auto_map
        # `pipeline(model=folder, trust_remote_code=True)` finds the pipeline here; the import above makes
        # save_pretrained copy its module.
        self.config.custom_pipelines = custom_pipelines()
        super().save_pretrained(save_directory, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args,
        language_model: PreTrainedModel | None = None,
        language_model_kwargs: dict | None = None,
        config: PretrainedConfig | None = None,
        **kwargs,
    ) -> PreTrainedModel:
        """Load a saved adapter; the backbone comes from the folder (if saved with it), from `language_model`
        (shared, not copied) or from `config.base_model_name_or_path` (loaded with `language_model_kwargs`,
        e.g. `{"trust_remote_code": True}`, plus `dtype`). The backbone is frozen on every path."""
        check_folder_or_hub_id(pretrained_model_name_or_path, "pretrained_model_name_or_path")
        hub_kwargs = {name: kwargs[name] for name in HUB_KWARG_NAMES if name in kwargs}
        if config is None:
            try:
                config = cls.config_class.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
            except OSError as error:  # transformers' offline message does not say which name it looked for
                if os.path.isdir(pretrained_model_name_or_path):
                    config_file = os.path.join(
                        pretrained_model_name_or_path, hub_kwargs.get("subfolder", ""), CONFIG_NAME
                    )
                    check_json_file(config_file, "the config.json written by save_pretrained")
                    raise
                raise OSError(
                    f"pretrained_model_name_or_path is {os.fspath(pretrained_model_name_or_path)!r}: not an "
                    f"existing folder, and it could not be loaded as a Hub model id ({error}); expected a "
                    "folder written by save_pretrained or a reachable Hub id"
                ) from None
        if saved_with_language_model(pretrained_model_name_or_path, hub_kwargs):
            if language_model is not None:
                raise ValueError(
                    f"{pretrained_model_name_or_path} holds its own language model; "
                    "load it without language_model="
                )
            model = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, config=config, **kwargs
            )
            model.freeze_language_model()
            return model
        if language_model is None:
            if not config.base_model_name_or_path:
                raise ValueError(
                    f"{pretrained_model_name_or_path} holds only adapter weights and "
                    "config.base_model_name_or_path is not set; pass language_model= (the backbone it was "
                    "trained on)"
                )
            backbone_kwargs = dict(language_model_kwargs or {})
            for name in _BACKBONE_KWARG_NAMES:
                if name in kwargs:
                    backbone_kwargs.setdefault(name, kwargs[name])
            language_model = cls._load_language_model(
                config.base_model_name_or_path, pretrained_model_name_or_path, backbone_kwargs
            )
        model = cls(config, language_model=language_model)
        weights_file = cached_file(pretrained_model_name_or_path, SAFE_WEIGHTS_NAME, **hub_kwargs)
        adapter_state = load_state_dict(weights_file)
        missing, unexpected = model.load_state_dict(adapter_state, strict=False)
        missing_adapter = [name for name in missing if name.startswith("adapter.")]
        if missing_adapter or unexpected:
            raise ValueError(
                f"{weights_file} does not match the adapter: missing {missing_adapter}, "
                f"unexpected {unexpected}"
            )
        embedding_weight = language_model.get_input_embeddings().weight
        # The adapter follows the backbone's device; its dtype changes only when one is asked for explicitly.
        dtype = kwargs.get("dtype")
        if dtype == "auto":
            dtype = embedding_weight.dtype
        elif isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        model.adapter.to(device=embedding_weight.device, dtype=dtype)
        model.freeze_language_model()
        return model.eval()

    @staticmethod
    def _load_language_model(
        backbone_path: str, pretrained_model_name_or_path: str | os.PathLike, backbone_kwargs: dict
    ) -> PreTrainedModel:
        """The backbone named by an adapter-only checkpoint, with one error naming the field when it cannot be
        found (instead of the download code's chain of tracebacks)."""
        source = (
            "the backbone path config.base_model_name_or_path of the adapter at "
            f"{os.fspath(pretrained_model_name_or_path)}"
        )
        remedy = "; pass language_model= or correct the path"
        check_folder_or_hub_id(backbone_path, source, remedy)
        try:
            return AutoModelForCausalLM.from_pretrained(backbone_path, **backbone_kwargs)
        except OSError as error:
            raise OSError(
                f"{source} is {backbone_path!r}, which could not be loaded ({error}){remedy}"
            ) from None
