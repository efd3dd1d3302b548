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

``make_emt_dataset`` writes small PNG images whose colour and stripe pattern determine the answer of each of
the five EMT tasks, and returns EMT records built with the exact M2SE templates (``m2se.emt.templates``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from m2se.data.schema import emt_dataset, multimodal_features
from m2se.emt import templates
from m2se.facial import action_unit_table

MELD_LABEL_NAMES = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")

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
        label_names = list(MELD_LABEL_NAMES if label_names is None else label_names)
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


# One base colour per emotion (RGB); sentiment: warm = Positive, cool = Negative.
_EMOTION_COLOURS = {
    "anger": (200, 30, 30),
    "sadness": (40, 60, 160),
    "surprise": (230, 200, 40),
    "disgust": (90, 140, 40),
    "joy": (240, 130, 30),
    "neutral": (128, 128, 128),
    "fear": (120, 40, 150),
}
_SENTIMENT_COLOURS = {"Positive.": (230, 120, 40), "Negative.": (40, 90, 200)}
_FER_EMOTIONS = ("joy", "sadness", "surprise", "fear", "anger", "disgust")


def _stripes_image(
    size: int, colour: tuple[int, int, int], stripes: Sequence[int], slots: int, rng: np.random.Generator
) -> Image.Image:
    """A ``colour`` square (slightly noisy) with a white vertical stripe in each of the ``stripes`` slots."""
    jitter = rng.integers(-12, 13, size=(size, size, 3))
    pixels = np.clip(np.array(colour)[None, None, :] + jitter, 0, 255).astype(np.uint8)
    for slot in stripes:
        left = slot * size // slots
        pixels[size // 2 :, left : max(left + 1, (slot + 1) * size // slots - 1)] = 255
    return Image.fromarray(pixels, mode="RGB")


def make_emt_dataset(
    out_dir: str | os.PathLike,
    num_per_task: int = 20,
    image_size: int = 32,
    seed: int = 0,
) -> datasets.Dataset:
    """Seeded EMT records for the five tasks, with PNG images written under ``out_dir``.

    The image determines the answer: MSA by a warm (Positive) or cool (Negative) colour, ER and ERI by the
    emotion's colour, FER by white stripes in the slots of the active action units (caption = their names
    from ``m2se.facial``), ECPE by the target emotion's colour and stripes in the slots of the cause
    utterances (the conversation in the query carries the emotion labels, as in ECF). The records are also
    written to ``out_dir/emt.jsonl`` (loadable with ``m2se.data.load_emt``) and returned with the
    ``m2se.data.schema.EMT_FEATURES`` schema, ordered by task then index.
    """
    if not isinstance(num_per_task, int) or num_per_task < 1:
        raise ValueError(f"num_per_task must be a positive int, got {num_per_task!r}")
    if not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an int >= 16 (a stripe per action unit), got {image_size!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    table = action_unit_table()
    au_slots = {au: slot for slot, au in enumerate(table.au_names)}
    sentences = neutral_sentences(rng, 2 * num_per_task)
    records = []

    def add(task: str, index: int, query: str, response: str, image: Image.Image) -> None:
        path = out / f"{task}_{index:05d}.png"
        image.save(path)
        records.append(
            {
                "id": f"synthetic-{task}-{index}",
                "task": task,
                "query": query,
                "response": response,
                "images": [str(path)],
            }
        )

    for i in range(num_per_task):
        answer = ("Positive.", "Negative.")[int(rng.integers(2))]
        image = _stripes_image(image_size, _SENTIMENT_COLOURS[answer], (), 1, rng)
        add("msa", i, templates.msa_query(sentences[i]), answer, image)
    for i in range(num_per_task):
        emotion = templates.ER_EMOTIONS[int(rng.integers(len(templates.ER_EMOTIONS)))]
        image = _stripes_image(image_size, _EMOTION_COLOURS[emotion], (), 1, rng)
        add("er", i, templates.er_query(sentences[num_per_task + i]), templates.label_answer(emotion), image)
    for i in range(num_per_task):
        emotion = _FER_EMOTIONS[int(rng.integers(len(_FER_EMOTIONS)))]
        aus = table.emotion_aus[emotion]
        active = sorted(
            rng.choice(aus, size=int(rng.integers(1, len(aus) + 1)), replace=False),
            key=lambda code: int(code[2:]),
        )
        image = _stripes_image(
            image_size, _EMOTION_COLOURS[emotion], [au_slots[au] for au in active], len(au_slots), rng
        )
        add("fer", i, templates.FER_QUERY, "; ".join(table.au_names[au] for au in active), image)
    for i in range(num_per_task):
        emotion = templates.ER_EMOTIONS[int(rng.integers(len(templates.ER_EMOTIONS)))]
        image = _stripes_image(image_size, _EMOTION_COLOURS[emotion], (), 1, rng)
        reason = f"The person feels {emotion}: the colours of the scene and the face show {emotion}."
        add("eri", i, templates.ERI_QUERY, reason, image)
    max_turns = 6
    for i in range(num_per_task):
        turns = int(rng.integers(2, max_turns + 1))
        emotions = [templates.ER_EMOTIONS[k] for k in rng.integers(len(templates.ER_EMOTIONS), size=turns)]
        target = int(rng.integers(1, turns))
        emotions[target] = _FER_EMOTIONS[int(rng.integers(len(_FER_EMOTIONS)))]
        texts = neutral_sentences(rng, turns)
        lines = [templates.ecpe_line(k + 1, emotions[k], "AB"[k % 2], texts[k]) for k in range(turns)]
        causes = sorted({int(c) + 1 for c in rng.integers(0, target + 1, size=int(rng.integers(1, 3)))})
        image = _stripes_image(
            image_size, _EMOTION_COLOURS[emotions[target]], [c - 1 for c in causes], max_turns, rng
        )
        add(
            "ecpe",
            i,
            templates.ecpe_query(lines, target),
            templates.ecpe_response(target + 1, emotions[target], causes),
            image,
        )

    with open(out / "emt.jsonl", "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return emt_dataset([{**record, "videos": [], "system": None} for record in records])
