"""Input checks of MSE-Adapter shared by the config, the processor and the model: clear TypeError / ValueError
messages naming the field, what was expected and what was received, raised before any compute.

Hub remote code: this module imports only the standard library, torch and transformers.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch


def describe_value(value: Any) -> str:
    """`value` with its type, for error messages: `'four' (str)`, `4.5 (float)`."""
    return f"{value!r} ({type(value).__name__})"


def is_integer(value: Any) -> bool:
    """An integer (Python or numpy), not a bool: `True` as a size or an index is always a mistake."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real_number(value: Any) -> bool:
    """An int or float (Python or numpy), not a bool and not complex."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_integer(name: str, value: Any) -> None:
    """TypeError when `value` is not an integer (`'four'`, `4.5`, `True`), ValueError when it is below 1."""
    if not is_integer(value):
        raise TypeError(f"{name} must be a positive integer, got {describe_value(value)}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")


def check_modality_inputs(
    name: str,
    values: torch.Tensor,
    lengths: torch.Tensor,
    feature_dim: int,
    batch_size: int,
    compute_dtype: torch.dtype = torch.float32,
) -> None:
    """Raise a TypeError or ValueError naming what was expected and received when padded features or their
    lengths are invalid.

    Args:
        name: "audio" or "video" (used in messages).
        values: `(batch, max_frames, feature_dim)` real numbers; `max_frames` may be 0 (modality missing for
            the whole batch).
        lengths: `(batch,)` integer true lengths, each in `[0, max_frames]`; 0 marks a missing modality.
        compute_dtype: the adapter's dtype; the values must stay finite once cast to it.
    """
    for input_name, tensor in ((f"{name}_values", values), (f"{name}_lengths", lengths)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{input_name} must be a torch.Tensor, got {type(tensor).__name__}")
    if values.dtype == torch.bool or values.is_complex():
        raise TypeError(f"{name}_values must hold real numbers (float or int), got dtype {values.dtype}")
    if values.ndim != 3:
        raise ValueError(
            f"{name}_values must be (batch, frames, {feature_dim}), got shape {tuple(values.shape)}"
        )
    if values.shape[0] != batch_size:
        raise ValueError(f"{name}_values holds {values.shape[0]} samples but input_ids holds {batch_size}")
    if values.shape[1] > 0 and values.shape[2] != feature_dim:
        raise ValueError(
            f"{name}_values must have feature dimension {feature_dim} (config.{name}_feature_dim), "
            f"got {values.shape[2]}"
        )
    if (
        lengths.shape != (batch_size,)
        or lengths.is_floating_point()
        or lengths.is_complex()
        or lengths.dtype == torch.bool
    ):
        raise ValueError(
            f"{name}_lengths must be an integer tensor of shape ({batch_size},), "
            f"got {lengths.dtype} of shape {tuple(lengths.shape)}"
        )
    if (lengths < 0).any() or (lengths > values.shape[1]).any():
        raise ValueError(
            f"{name}_lengths must lie in [0, {values.shape[1]}] (the padded frame count), "
            f"got {lengths.tolist()}"
        )
    if not torch.isfinite(values).all():
        raise ValueError(
            f"{name}_values must be finite, got NaN or Inf (clean the features, e.g. set them to 0)"
        )
    if not torch.isfinite(values.to(compute_dtype)).all():
        raise ValueError(
            f"{name}_values must be finite in the adapter's dtype {compute_dtype}, got values beyond its "
            f"range (largest magnitude {values.abs().max().item():.3g}; rescale the features)"
        )


def check_token_inputs(
    input_ids: torch.Tensor,
    utterance_mask: torch.Tensor | None,
    labels: torch.Tensor | None,
    vocab_size: int,
    pseudo_token_id: int | None,
) -> None:
    """Raise a TypeError or ValueError naming what was expected and received when the token inputs are not
    what `MSEAdapterProcessor` builds.

    Args:
        input_ids: `(batch, seq_len)` integer ids in `[0, vocab_size)`, apart from the `<pseudo>` placeholder
            (which may lie outside the backbone vocabulary).
        utterance_mask: `(batch, <= seq_len)` of 0/1, or None.
        labels: `(batch, seq_len)` integer ids in `[0, vocab_size)` or -100, or None.
    """
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if input_ids.ndim != 2 or 0 in input_ids.shape:
        raise ValueError(
            f"input_ids must be (batch, seq_len) with at least one row and one token, got shape "
            f"{tuple(input_ids.shape)}"
        )
    token_ids = input_ids[input_ids != pseudo_token_id] if pseudo_token_id is not None else input_ids
    if token_ids.numel() and (token_ids.min() < 0 or token_ids.max() >= vocab_size):
        raise ValueError(
            f"input_ids must lie in [0, {vocab_size - 1}] (the backbone vocabulary) apart from the <pseudo> "
            f"id {pseudo_token_id} (config.pseudo_token_id, which must be the processor's pseudo_token_id), "
            f"got ids from {int(token_ids.min())} to {int(token_ids.max())}"
        )
    if utterance_mask is not None:
        if not isinstance(utterance_mask, torch.Tensor):
            raise TypeError(f"utterance_mask must be a torch.Tensor, got {type(utterance_mask).__name__}")
        if utterance_mask.ndim != 2 or utterance_mask.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"utterance_mask must be ({input_ids.shape[0]}, seq_len), "
                f"got shape {tuple(utterance_mask.shape)}"
            )
        if not ((utterance_mask == 0) | (utterance_mask == 1)).all():
            raise ValueError("utterance_mask must hold only 0 and 1 (1 on the utterance tokens)")
    if labels is not None:
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"labels must hold integer token ids or -100, got dtype {labels.dtype}")
        if labels.shape != input_ids.shape:
            raise ValueError(
                f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got {tuple(labels.shape)}"
            )
        supervised = labels[labels != -100]
        if supervised.numel() and (supervised.min() < 0 or supervised.max() >= vocab_size):
            raise ValueError(
                f"labels must be -100 or token ids in [0, {vocab_size - 1}], got ids from "
                f"{int(supervised.min())} to {int(supervised.max())}"
            )


def find_placeholders(
    input_ids: torch.Tensor,
    utterance_mask: torch.Tensor | None,
    vocab_size: int,
    config: Any,
    has_features: bool,
) -> torch.Tensor:
    """`(batch, seq_len)` bool mask of the `<pseudo>` placeholders (`config.pseudo_token_id`) once the token
    inputs are checked; a ValueError naming the config's value and the inputs' when they do not match."""
    pseudo_token_id, num_pseudo_tokens = config.pseudo_token_id, config.num_pseudo_tokens
    if pseudo_token_id is None and has_features:
        raise ValueError(
            "config.pseudo_token_id is not set, so the <pseudo> placeholders cannot be found: set it to "
            "the processor's pseudo_token_id (MSEAdapterForCausalLM.from_language_model does)"
        )
    check_token_inputs(input_ids, utterance_mask, None, vocab_size, pseudo_token_id)
    is_pseudo = input_ids == (pseudo_token_id if pseudo_token_id is not None else -1)
    if not is_pseudo.any():
        if has_features:
            raise ValueError(
                f"audio/video features were given but input_ids hold no <pseudo> placeholder "
                f"(config.pseudo_token_id={pseudo_token_id}); build the inputs with MSEAdapterProcessor, "
                "whose pseudo_token_id must equal config.pseudo_token_id"
            )
        return is_pseudo
    counts = is_pseudo.sum(dim=-1)
    if (counts != num_pseudo_tokens).any():
        raise ValueError(
            f"each row of input_ids must hold exactly {num_pseudo_tokens} <pseudo> "
            f"placeholders (config.num_pseudo_tokens; id {pseudo_token_id}), got {counts.tolist()}: "
            "build the processor with the config's num_pseudo_tokens"
        )
    if utterance_mask is None:
        raise ValueError("utterance_mask (from MSEAdapterProcessor) is required with multimodal inputs")
    return is_pseudo


def default_modality(
    values: torch.Tensor | None, lengths: torch.Tensor | None, batch_size: int, input_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Missing features become zero frames; missing lengths mean every frame is real."""
    if values is None:
        values = torch.zeros(batch_size, 0, 0, device=input_ids.device)
        lengths = torch.zeros(batch_size, dtype=torch.long, device=input_ids.device)
    elif lengths is None:
        lengths = torch.full((values.shape[0],), values.shape[1], dtype=torch.long, device=values.device)
    return values, lengths


def labels_for_kept_logits(labels: torch.Tensor, logits_to_keep: int) -> torch.Tensor:
    """Labels aligned with logits of the last `logits_to_keep` positions only.

    With left padding every label sits at the end, so keeping the last few logits skips most of the output
    layer's cost on a large vocabulary; the loss is unchanged as long as no supervised token is dropped.
    """
    dropped = labels[:, : labels.shape[1] - logits_to_keep + 1]
    if (dropped != -100).any():
        raise ValueError(
            f"logits_to_keep={logits_to_keep} drops supervised label positions: keep at least the "
            "position before the first label token"
        )
    return labels[:, -logits_to_keep:]


def pad_features(
    name: str, samples: Sequence[Any] | None, batch_size: int, feature_dim: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad per-sample `(frames, feature_dim)` arrays of real numbers to `(batch, max_frames,
    feature_dim)` float32; also return the true lengths `(batch,)`.

    A sample with zero frames (`None`, `[]`, shape `(0, d)`) is a missing modality. Anything else that is
    not a finite `(frames >= 1, feature_dim >= 1)` array of ints or floats raises a TypeError (wrong kind
    or dtype: bool, complex, strings, objects) or a ValueError (wrong shape or values).
    """
    if samples is None:
        samples = [None] * batch_size
    if isinstance(samples, (str, bytes)) or not (
        isinstance(samples, Sequence) or getattr(samples, "ndim", 0) >= 1
    ):
        raise TypeError(
            f"{name} must be a list with one (frames, feature_dim) array or None per sample, "
            f"got {type(samples).__name__}"
        )
    if len(samples) != batch_size:
        raise ValueError(f"{name} holds {len(samples)} samples but text holds {batch_size}")
    tensors = []
    for index, sample in enumerate(samples):
        if sample is None:
            tensors.append(None)
            continue
        try:
            values = torch.as_tensor(sample)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"{name}[{index}] must be a (frames, feature_dim) array of numbers, got "
                f"{type(sample).__name__} that is not one ({error})"
            ) from None
        if values.dtype == torch.bool or values.is_complex():
            raise TypeError(
                f"{name}[{index}] must hold real numbers (float or int), got dtype {values.dtype}"
            )
        if (values.ndim == 1 and values.numel() == 0) or (values.ndim == 2 and values.shape[0] == 0):
            tensors.append(None)  # zero frames, e.g. [] from JSON or a datasets column
            continue
        if values.ndim != 2:
            raise ValueError(
                f"{name}[{index}] must be a (frames, feature_dim) array, got shape {tuple(values.shape)}"
            )
        if values.shape[1] == 0 and feature_dim is None:
            raise ValueError(f"{name}[{index}] must have feature dimension of at least 1, got 0")
        if feature_dim is None:
            feature_dim = values.shape[1]
        if values.shape[1] != feature_dim:
            raise ValueError(
                f"{name}[{index}] must have feature dimension {feature_dim}, got {values.shape[1]}"
            )
        if not torch.isfinite(values).all():
            raise ValueError(f"{name}[{index}] holds NaN or Inf; expected finite features (clean them first)")
        values = values.to(torch.float32)
        if not torch.isfinite(values).all():
            raise ValueError(
                f"{name}[{index}] holds values beyond the float32 range (|x| > 3.4e38); expected "
                "features the model can represent (rescale them first)"
            )
        tensors.append(values)
    lengths = torch.tensor([0 if values is None else values.shape[0] for values in tensors], dtype=torch.long)
    padded = torch.zeros(batch_size, int(lengths.max()), feature_dim or 0)
    for index, values in enumerate(tensors):
        if values is not None and values.shape[0] > 0:
            padded[index, : values.shape[0]] = values
    return padded, lengths


def texts_per_sample(text: Any) -> list[str]:
    """`text` (one string or a non-empty list of strings) as a list; a TypeError / ValueError otherwise."""
    if isinstance(text, str):
        return [text]
    if not isinstance(text, (list, tuple)):
        raise TypeError(f"text must be a string or a non-empty list of strings, got {type(text).__name__}")
    if not text:
        raise ValueError("text must be a string or a non-empty list of strings, got an empty list")
    for index, utterance in enumerate(text):
        if not isinstance(utterance, str):
            raise TypeError(f"text[{index}] must be a string, got {type(utterance).__name__}")
    return list(text)


def labels_per_sample(labels: Any, single_sample: bool) -> list[Any]:
    """`labels` as a list of Python scalars: a list, tuple, 1-D array or tensor, or (when `text` is one
    string) a single label."""
    if hasattr(labels, "tolist"):  # numpy array or torch tensor (0-d gives a scalar)
        labels = labels.tolist()
    if isinstance(labels, (list, tuple)):
        return list(labels)
    if single_sample:
        return [labels]
    raise TypeError(f"labels must be a list with one label per text, got {describe_value(labels)}")


def add_placeholder_token(tokenizer: Any, token: str) -> int:
    """Add `token` to `tokenizer` as a special token (when new) and return its id; a ValueError when the
    tokenizer cannot encode it as that one token."""
    if token not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"extra_special_tokens": [token]}, replace_extra_special_tokens=False)
    token_id = tokenizer.convert_tokens_to_ids(token)
    encoded = tokenizer(token, add_special_tokens=False, verbose=False)["input_ids"]
    if token_id is None or encoded != [token_id]:
        raise ValueError(
            f"the tokenizer cannot hold the placeholder {token!r} as one token: expected [{token_id}], "
            f"got {encoded}"
        )
    return token_id
