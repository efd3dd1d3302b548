"""Synthetic data with learnable labels, for demos, tests and benchmarks that must run offline.

``make_multimodal_dataset`` follows the standard multimodal row schema (``m2se.data.schema``). Every sample
has a latent signal that shows in its audio and video frames; the label is computed from the mean-pooled
features alone, so a small model can learn it while the text (neutral template sentences drawn
independently) carries no label information:

* regression: ``label = clip(round(center + half_range * tanh(w_a . mean(audio) + w_v . mean(video)), 1))``
  with ``center``/``half_range`` taken from ``value_range``;
* classification: ``label = argmax_k -||mean(audio) (+) mean(video) - prototype_k||^2`` (nearest class
  prototype of the pooled features; samples are drawn around a random prototype, so the classes are balanced
  up to the noise).

The weights ``w_a``, ``w_v`` and the prototypes depend only on the dimensions and the number of classes, never
on ``seed``: a training set and an evaluation set drawn with different seeds share the same labelling
function. ``seed`` decides the samples.

The synthetic EMT records (instruction data with images) are built in ``m2se.emt.synthetic``.
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import numpy as np

from m2se.data.conversations import MELD_EMOTIONS
from m2se.data.schema import multimodal_features

_SUBJECTS = ("The meeting", "The train", "The report", "Our lunch", "The weather", "The package", "The bus")
_VERBS = ("starts", "arrives", "is scheduled", "was moved", "ends", "is listed", "gets checked")
_TIMES = ("at noon.", "on Monday.", "after the break.", "next week.", "in the morning.", "around five.")

# Fixed so that sets drawn with different seeds share one labelling function.
_FUNCTION_SEED = 20250212
_FRAME_NOISE = 0.5


def neutral_sentences(rng: np.random.Generator, count: int) -> list[str]:
    """Label-free template sentences such as ``"The train arrives at noon."``."""
    picks = rng.integers(0, [len(_SUBJECTS), len(_VERBS), len(_TIMES)], size=(count, 3))
    return [f"{_SUBJECTS[s]} {_VERBS[v]} {_TIMES[t]}" for s, v, t in picks]


def _frames(rng: np.random.Generator, center: np.ndarray, length: int) -> np.ndarray:
    return (center + _FRAME_NOISE * rng.standard_normal((length, center.shape[0]))).astype(np.float32)


def make_multimodal_dataset(
    num_samples: int,
    task: str = "regression",
    *,
    label_names: Sequence[str] | None = None,
    audio_dim: int = 16,
    video_dim: int = 8,
    max_audio_len: int = 20,
    max_video_len: int = 10,
    value_range: tuple[float, float] = (-3.0, 3.0),
    seed: int = 0,
) -> datasets.Dataset:
    """A seeded synthetic MSA (``task="regression"``) or ERC (``task="classification"``) dataset.

    Sequence lengths are uniform in [1, max_len]. Classification uses ``label_names`` (MELD's seven emotions
    by default) as a ``ClassLabel``; regression labels are rounded to one decimal within ``value_range``.
    """
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    for name, value in (
        ("audio_dim", audio_dim),
        ("video_dim", video_dim),
        ("max_audio_len", max_audio_len),
        ("max_video_len", max_video_len),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if task == "regression":
        if label_names is not None:
            raise ValueError(f"label_names is for classification; got {label_names!r} with task='regression'")
        low, high = (float(v) for v in value_range)
        if not low < high:
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    else:
        label_names = list(MELD_EMOTIONS if label_names is None else label_names)
        if len(label_names) < 2 or len(set(label_names)) != len(label_names):
            raise ValueError(f"label_names must hold at least two distinct names, got {label_names!r}")

    function_rng = np.random.default_rng([_FUNCTION_SEED, audio_dim, video_dim])
    rng = np.random.default_rng(seed)
    audio_lengths = rng.integers(1, max_audio_len + 1, size=num_samples)
    video_lengths = rng.integers(1, max_video_len + 1, size=num_samples)

    if task == "regression":
        audio_direction = function_rng.standard_normal(audio_dim)
        video_direction = function_rng.standard_normal(video_dim)
        audio_direction /= np.linalg.norm(audio_direction)
        video_direction /= np.linalg.norm(video_direction)
        latents = rng.normal(0.0, 0.7, size=(num_samples, 2))
        audio_centers = latents[:, :1] * audio_direction
        video_centers = latents[:, 1:] * video_direction
    else:
        prototypes = 1.5 * function_rng.standard_normal((len(label_names), audio_dim + video_dim))
        drawn = rng.integers(0, len(label_names), size=num_samples)
        audio_centers = prototypes[drawn, :audio_dim]
        video_centers = prototypes[drawn, audio_dim:]

    audio = [_frames(rng, audio_centers[i], int(audio_lengths[i])) for i in range(num_samples)]
    video = [_frames(rng, video_centers[i], int(video_lengths[i])) for i in range(num_samples)]
    pooled = np.concatenate(
        [np.stack([a.mean(axis=0) for a in audio]), np.stack([v.mean(axis=0) for v in video])], axis=1
    )
    if task == "regression":
        drive = pooled[:, :audio_dim] @ audio_direction + pooled[:, audio_dim:] @ video_direction
        center, half_range = (low + high) / 2, (high - low) / 2
        labels = np.clip(np.round(center + half_range * np.tanh(drive), 1), low, high).astype(np.float32)
        label_list = labels.tolist()
    else:
        distances = ((pooled[:, None, :] - prototypes[None, :, :]) ** 2).sum(axis=-1)
        label_list = distances.argmin(axis=1).tolist()

    return datasets.Dataset.from_dict(
        {
            "id": [f"synthetic-{seed}-{i}" for i in range(num_samples)],
            "source": ["synthetic"] * num_samples,
            "text": neutral_sentences(rng, num_samples),
            "audio": audio,
            "video": video,
            "audio_length": audio_lengths.tolist(),
            "video_length": video_lengths.tolist(),
            "label": label_list,
        },
        features=multimodal_features(audio_dim, video_dim, label_names if task == "classification" else None),
    )
