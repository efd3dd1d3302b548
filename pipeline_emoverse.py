"""`pipeline()` for EmoVerse: an image or a video and an EMT task (or a free query) -> the model's answer.

    from transformers import pipeline

    analyzer = pipeline(model="path/to/checkpoint", trust_remote_code=True)
    analyzer("clip.mp4", task="msa", text="I liked it")   # {"task": "msa", "generated_text": "Positive."}
    analyzer("face.png", task="fer")                       # free text: the facial action units
    analyzer("clip.mp4", query="What is happening?")
    analyzer(["a.mp4", "b.mp4"], task="er", text=["...", "..."], batch_size=2)

The closed-set tasks (MSA, ER) generate under the processor's answer constraint, so their answer is always one
of the task's answers. The queries are the EMT templates the model was trained on (`templates_emoverse`).

Hub remote code: this module imports only the standard library, torch, transformers, PyAV (lazily) and the
other `*_emoverse.py` modules. `EmoVerseForConditionalGeneration.save_pretrained` writes
`config.custom_pipelines` (see `custom_pipelines`), so `pipeline(model=folder, trust_remote_code=True)` finds
this class without a task name.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Sequence
from typing import Any

from torch.utils.data import DataLoader
from transformers import AutoModelForImageTextToText, LogitsProcessorList, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.pt_utils import PipelineIterator

try:
    from .templates_emoverse import (
        CLOSED_TASK_ANSWERS,
        EMT_TASKS,
        ERI_QUERY,
        FER_QUERY,
        ecpe_line,
        ecpe_query,
        er_query,
        msa_query,
    )
except ImportError:  # imported as a top-level module (installed package or checkout), not as Hub code
    from templates_emoverse import (
        CLOSED_TASK_ANSWERS,
        EMT_TASKS,
        ERI_QUERY,
        FER_QUERY,
        ecpe_line,
        ecpe_query,
        er_query,
        msa_query,
    )

PIPELINE_TASK = "multimodal-emotion-analysis"
# Tasks whose query quotes the utterance.
UTTERANCE_TASKS = ("msa", "er")
CONVERSATION_KEYS = ("speaker", "emotion", "text")


def build_query(
    task: str, text: str | None = None, conversation: Sequence[dict] | None = None, target_index: int = -1
) -> str:
    """The EMT query of `task`: MSA / ER quote the utterance `text`; ECPE lays out `conversation` (dicts with
    `speaker`, `emotion`, `text`) and asks for the causes of the utterance at `target_index` (default: the
    last); FER and ERI take no text."""
    if task not in EMT_TASKS:
        raise ValueError(f"task must be one of {list(EMT_TASKS)}, got {task!r}")
    if task in UTTERANCE_TASKS:
        if not isinstance(text, str):
            raise ValueError(f"task {task!r} asks about an utterance: pass text= (what is said in the clip)")
        return msa_query(text) if task == "msa" else er_query(text)
    if text is not None:
        raise ValueError(f"task {task!r} takes no text= (only {list(UTTERANCE_TASKS)} quote an utterance)")
    if task == "fer":
        return FER_QUERY
    if task == "eri":
        return ERI_QUERY
    if not conversation:
        raise ValueError(
            f"task 'ecpe' needs conversation= (a list of dicts with keys {list(CONVERSATION_KEYS)})"
        )
    lines = []
    for index, turn in enumerate(conversation):
        if not isinstance(turn, dict) or set(turn) != set(CONVERSATION_KEYS):
            raise ValueError(
                f"conversation[{index}] must be a dict with keys {list(CONVERSATION_KEYS)}, got {turn!r}"
            )
        lines.append(ecpe_line(index + 1, turn["emotion"], turn["speaker"], turn["text"]))
    return ecpe_query(lines, target_index % len(lines) if -len(lines) <= target_index < 0 else target_index)


class EmoVersePipeline(Pipeline):
    r"""
    EMT tasks on images and videos with an [`EmoVerseForConditionalGeneration`] and its `EmoVerseProcessor`.

    Returns per input `{"task": task or None, "generated_text": answer}`. A list of inputs is checked entirely
    (files readable, videos within `max_video_seconds`) before the model runs, then batched (`batch_size=`).
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False

    def __call__(
        self,
        inputs: str | os.PathLike | Sequence[str | os.PathLike],
        task: str | None = None,
        query: str | None = None,
        text: str | Sequence[str] | None = None,
        conversation: Sequence[dict] | None = None,
        target_index: int = -1,
        **kwargs,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Answer for one image / video path or a list of them.

        Args:
            task: `"msa"`, `"er"`, `"fer"`, `"eri"` or `"ecpe"`: the query is the task's EMT template.
            query: a free query instead of a task (answered in free text).
            text: MSA / ER: the utterance; one string, or one per input of a list.
            conversation / target_index: ECPE: the conversation turns (dicts with `speaker`, `emotion`,
                `text`) and the 0-based index of the target utterance (default: the last).
            max_new_tokens (`int`, defaults to 128): longest free-text answer.
            max_video_seconds (`float`, defaults to 600): longer videos are refused before decoding.
            batch_size (`int`, defaults to 1): inputs per `generate` call.
        """
        if (task is None) == (query is None):
            raise ValueError(f"give exactly one of task= (one of {list(EMT_TASKS)}) or query= (free text)")
        batched = isinstance(inputs, (list, tuple))
        paths = list(inputs) if batched else [inputs]
        if not paths:
            raise ValueError("inputs is an empty list; expected at least one image or video path")
        for index, path in enumerate(paths):
            if not isinstance(path, (str, os.PathLike)):
                raise TypeError(
                    f"inputs[{index}] must be an image or video file path, got {type(path).__name__}"
                )
        if batched and text is not None:
            if not isinstance(text, (list, tuple)):
                raise TypeError(
                    "for a list of inputs, text must be a list (one utterance per input), got "
                    f"{type(text).__name__}"
                )
            texts = list(text)
        else:
            texts = [text] * len(paths)
        if len(texts) != len(paths):
            raise ValueError(
                f"text holds {len(texts)} utterances for {len(paths)} inputs; give one per input"
            )
        items = []
        for path, utterance in zip(paths, texts, strict=True):
            if query is not None and (utterance is not None or conversation is not None):
                raise ValueError("query= is a free query: text= and conversation= belong to task=")
            prompt = query if query is not None else build_query(task, utterance, conversation, target_index)
            items.append({"media": os.fspath(path), "query": prompt, "task": task})
        return super().__call__(items if batched else items[0], **kwargs)

    def _sanitize_parameters(self, max_new_tokens: int = 128, max_video_seconds: float = 600.0, **kwargs):
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        if not (isinstance(max_video_seconds, (int, float)) and max_video_seconds > 0):
            raise ValueError(f"max_video_seconds must be a number > 0, got {max_video_seconds!r}")
        return {"max_video_seconds": max_video_seconds}, {"max_new_tokens": max_new_tokens}, {}

    def preprocess(self, item: dict[str, Any], max_video_seconds: float = 600.0) -> dict[str, Any]:
        """One input -> its EMT record (`query`, `images` or `videos`), checked: the file exists, decodes,
        and a video lasts at most `max_video_seconds`."""
        path = item["media"]
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: image or video file not found")
        kind = (mimetypes.guess_type(path)[0] or "").split("/")[0]
        if kind == "image":
            record = {"query": item["query"], "images": [path]}
        else:
            self._check_video_length(path, max_video_seconds)
            record = {"query": item["query"], "videos": [path]}
        # Decoding once here refuses an unreadable file before any input reaches the model.
        self.processor.process_emt_records([record], training=False)
        return {"record": record, "task": item["task"]}

    @staticmethod
    def _check_video_length(path: str, max_video_seconds: float) -> None:
        import av

        try:
            with av.open(path) as container:
                if not container.streams.video:
                    raise ValueError(f"{path}: no video stream; expected an image or a video file")
                duration = container.duration  # microseconds; None when the container does not say
        except av.FFmpegError as error:
            raise ValueError(
                f"{path}: not a readable image or video file ({error}); expected an image or a video that "
                "FFmpeg decodes"
            ) from error
        if duration is not None and duration / 1_000_000 > max_video_seconds:
            raise ValueError(
                f"{path}: the video lasts {duration / 1_000_000:.1f} s, longer than max_video_seconds="
                f"{max_video_seconds:g}; cut it or raise max_video_seconds"
            )

    def _collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        tasks = {sample["task"] for sample in samples}
        batch = self.processor.process_emt_records([sample["record"] for sample in samples], training=False)
        return {"inputs": batch, "task": tasks.pop()}  # one call has one task

    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        model_inputs = self._collate([self.preprocess(inputs, **preprocess_params)])
        return self.postprocess(self.forward(model_inputs, **forward_params), **postprocess_params)

    def get_iterator(
        self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params, postprocess_params
    ):
        # Every input is checked before the model runs: a bad file in a list fails the call up front.
        samples = [self.preprocess(item, **preprocess_params) for item in inputs]
        loader = DataLoader(samples, batch_size=batch_size, collate_fn=self._collate)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def _forward(self, model_inputs: dict[str, Any], max_new_tokens: int = 128) -> dict[str, Any]:
        """`answers`: one string per sample (a closed task's answer, or the decoded free text)."""
        inputs, task = model_inputs["inputs"], model_inputs["task"]
        prompt_length = inputs["input_ids"].shape[1]
        if task in CLOSED_TASK_ANSWERS:
            constraint = self.processor.answer_logits_processor(task)
            generated = self.model.generate(
                **inputs,
                logits_processor=LogitsProcessorList([constraint]),
                max_new_tokens=constraint.max_answer_length + 1,
                do_sample=False,
                num_beams=1,
            )
            answers = constraint.decode(generated[:, prompt_length:])
        else:
            generated = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            answers = self.processor.tokenizer.batch_decode(
                generated[:, prompt_length:], skip_special_tokens=True
            )
        return {"answers": [answer.strip() for answer in answers], "task": [task] * len(answers)}

    def postprocess(self, model_outputs: dict[str, Any]) -> dict[str, Any]:
        answers, tasks = model_outputs["answers"], model_outputs["task"]
        answer = answers[0] if isinstance(answers, list) else answers
        task = tasks[0] if isinstance(tasks, list) else tasks
        return {"task": task, "generated_text": answer}


def custom_pipelines() -> dict[str, dict[str, Any]]:
    """The `config.custom_pipelines` entry (the form `Pipeline.save_pretrained` writes) with which
    `pipeline(model=folder, trust_remote_code=True)` picks this pipeline without a task name."""
    return {
        PIPELINE_TASK: {
            "impl": f"{__name__.rsplit('.', 1)[-1]}.{EmoVersePipeline.__name__}",
            "pt": [AutoModelForImageTextToText.__name__],
            "type": "multimodal",
        }
    }


# For in-process use: `pipeline("multimodal-emotion-analysis", model=model, processor=processor)`. The first
# import registers; a checkpoint's copy of this module (loaded as remote code) leaves that entry alone.
if PIPELINE_TASK not in PIPELINE_REGISTRY.supported_tasks:
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK,
        pipeline_class=EmoVersePipeline,
        pt_model=AutoModelForImageTextToText,
        type="multimodal",
    )
