"""Synthetic EMT records whose images determine the answers, for demos, tests and benchmarks offline.

``make_emt_dataset`` writes small PNG images whose colour and stripe pattern determine the answer of each of
the five EMT tasks, and returns EMT records built with the exact M2SE templates (``m2se.emt.templates``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from m2se.data.schema import emt_dataset
from m2se.data.synthetic import neutral_sentences
from m2se.emt import templates
from m2se.emt.builders import write_jsonl
from m2se.facial import action_unit_table

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
_SENTIMENT_COLOURS = dict(
    zip(templates.CLOSED_TASK_ANSWERS["msa"], ((230, 120, 40), (40, 90, 200)), strict=True)
)
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
        answer = templates.CLOSED_TASK_ANSWERS["msa"][int(rng.integers(2))]
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

    write_jsonl(records, out / "emt.jsonl")
    return emt_dataset([{**record, "videos": [], "system": None} for record in records])
