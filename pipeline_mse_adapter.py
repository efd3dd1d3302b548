"""`pipeline()` for MSE-Adapter: a clip (video with audio, audio only or video only) and its transcript -> the
sentiment, with class probabilities from the model's own likelihood of each answer.

    from transformers import pipeline

    classifier = pipeline(model="path/to/checkpoint", trust_remote_code=True)
    classifier("clip.mp4", text="I really liked it")          # [{"label": "positive", "score": 0.93}]
    classifier("clip.mp4", text="...", top_k=None)            # every class, scores summing to 1
    classifier(["a.mp4", "b.wav"], text=["...", "..."], batch_size=8)

Hub remote code: this module imports only the standard library, numpy, torch, transformers and the other
`*_mse_adapter.py` modules. `MSEAdapterForCausalLM.save_pretrained` writes `config.custom_pipelines` (see
`custom_pipelines`), so `pipeline(model=folder, trust_remote_code=True)` finds this class without a task name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForCausalLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.pt_utils import PipelineIterator

try:
    from .feature_extraction_mse_adapter import (
        PART_MODALITIES,
        MediaError,
        check_part_width,
        load_audio,
        open_media,
    )
except ImportError:  # imported as a top-level module (installed package or checkout), not as Hub code
    from feature_extraction_mse_adapter import (
        PART_MODALITIES,
        MediaError,
        check_part_width,
        load_audio,
        open_media,
    )

PIPELINE_TASK = "multimodal-sentiment-analysis"
REGRESSION_LABEL = "sentiment"
# Keys of one input given as a dict: a media file, or features already extracted (e.g. from an MMSA pickle).
INPUT_KEYS = ("media", "text", "audio", "video")


class MSEAdapterPipeline(Pipeline):
    r"""
    Sentiment / emotion of clips with an [`MSEAdapterForCausalLM`] and its `MSEAdapterProcessor`.

    Classification returns, per input, `[{"label", "score"}]` sorted by score (top 1 by default; `top_k=None`
    gives every class; the scores are the softmax of the model's log-likelihood of each admissible answer, so
    they sum to 1 over the label set). Regression returns `{"label": "sentiment", "score": value}`, the value
    always inside the processor's `value_range`.

    An input is a media file path (its audio and video become features with the extractors the processor
    holds, `processor.feature_extractor` / `processor.video_processor`, exactly as in training; a missing
    stream is a zero-length modality), or a dict with `media` and/or pre-extracted `audio` / `video` feature
    arrays `(frames, feature_dim)` and `text`. A list of inputs is read and checked entirely before the model
    runs, then batched (`batch_size=`).
    """

    # Everything comes with the processor: its tokenizer and the extractors it holds (a checkpoint trained on
    # features extracted elsewhere has none).
    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_video_processor = False
    _load_image_processor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in PART_MODALITIES:
            given, held = getattr(self, name, None), getattr(self.processor, name)
            if given is not None and given is not held:
                raise ValueError(
                    f"{name}= was given to the pipeline, which reads media with the processor's extractors "
                    f"only: build the processor with it (MSEAdapterProcessor(tokenizer, {name}=...))"
                )
            width = getattr(self.model.config, f"{PART_MODALITIES[name]}_feature_dim")
            check_part_width(name, held, width, "the model's config")

    def __call__(
        self,
        inputs: str | os.PathLike | dict | Sequence[str | os.PathLike | dict],
        text: str | Sequence[str] | None = None,
        **kwargs,
    ) -> list[dict[str, Any]] | dict[str, Any] | list:
        """Predict for one input or a list of inputs.

        Args:
            inputs: a media file path, a dict (`media`, `text`, `audio`, `video`), or a list of those.
            text: the transcript of a single input, or one transcript per input of a list (instead of a
                `text` key in the dicts).
            asr_model (`str` or `Pipeline`, *optional*): a transformers speech-recognition model (id, folder
                or pipeline) that transcribes the audio of inputs given without a transcript.
            top_k (`int` or `None`, defaults to 1): classes per input, best first; `None` for all.
            batch_size (`int`, defaults to 1): inputs per forward pass.
        """
        batched = isinstance(inputs, (list, tuple))
        items = [self._as_item(item) for item in inputs] if batched else [self._as_item(inputs)]
        if not items:
            raise ValueError("inputs is an empty list; expected at least one media file path or dict")
        if text is not None:
            texts = list(text) if batched and not isinstance(text, str) else [text]
            if len(texts) != len(items):
                raise ValueError(
                    f"text holds {len(texts)} transcripts for {len(items)} inputs; give one per input"
                )
            for index, (item, transcript) in enumerate(zip(items, texts, strict=True)):
                if "text" in item:
                    raise ValueError(
                        f"input {index} has a 'text' key and text= is given too; give one of them"
                    )
                item["text"] = transcript
        return super().__call__(items if batched else items[0], **kwargs)

    @staticmethod
    def _as_item(item: Any) -> dict[str, Any]:
        if isinstance(item, (str, os.PathLike)):
            return {"media": os.fspath(item)}
        if isinstance(item, dict):
            unknown = sorted(set(item) - set(INPUT_KEYS))
            if unknown:
                raise ValueError(
                    f"input dict has unknown keys {unknown}; expected keys among {list(INPUT_KEYS)}"
                )
            if not any(key in item for key in ("media", "audio", "video")):
                raise ValueError(
                    "input dict needs 'media' (a file path) or 'audio' / 'video' features, got keys "
                    f"{sorted(item)}"
                )
            return dict(item)
        raise TypeError(
            f"an input must be a media file path or a dict with keys among {list(INPUT_KEYS)}, got "
            f"{type(item).__name__}"
        )

    def _sanitize_parameters(self, asr_model=None, top_k: int | None = 1, **kwargs):
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive integer or None (every class), got {top_k!r}")
        preprocess_params = {}
        if asr_model is not None:
            preprocess_params["asr_model"] = self._speech_recognizer(asr_model)
        return preprocess_params, {}, {"top_k": top_k}

    def _speech_recognizer(self, asr_model: str | os.PathLike | Pipeline) -> Pipeline:
        from transformers import pipeline

        if isinstance(asr_model, Pipeline):
            return asr_model
        return pipeline("automatic-speech-recognition", model=os.fspath(asr_model), device=self.device)

    def preprocess(self, item: dict[str, Any], asr_model: Pipeline | None = None) -> dict[str, Any]:
        """One input -> its transcript, audio `(frames, audio_dim)` and video `(frames, video_dim)` features
        (`None` or zero frames: a missing modality). Media is read with the processor's extractors."""
        audio, video = item.get("audio"), item.get("video")
        where = item.get("media", "input")
        if "media" in item:
            audio_extractor, video_processor = self._extractors(where)
            if audio is None and audio_extractor is not None:
                audio = audio_extractor(where)["audio_values"][0]
            if video is None and video_processor is not None:
                video = video_processor(where)["video_values"][0]
        transcript = item.get("text")
        if transcript is None:
            transcript = self._transcribe(item, asr_model)
        if not isinstance(transcript, str):
            raise TypeError(
                f"{where}: text must be a string (the transcript), got {type(transcript).__name__}"
            )
        return {"text": transcript, "audio": audio, "video": video}

    def _extractors(self, path: str) -> tuple[Any, Any]:
        """The processor's audio feature extractor and video processor (either may be None, not both)."""
        audio_extractor, video_processor = self.processor.feature_extractor, self.processor.video_processor
        if audio_extractor is None and video_processor is None:
            raise ValueError(
                f"{path}: this checkpoint has no feature extractor (the adapter was trained on "
                "features extracted elsewhere); pass a dict with 'text' and 'audio' / 'video' feature arrays "
                "(frames, feature_dim) instead of a media file"
            )
        return audio_extractor, video_processor

    def check_media(self, path: str) -> None:
        """Refuse, before any extraction or model compute, a file that is missing or unreadable, that has no
        stream this checkpoint reads, or whose streams last longer than its extractors' `max_seconds`."""
        audio_extractor, video_processor = self._extractors(path)
        expected = []
        if audio_extractor is not None:
            expected.append(("audio", audio_extractor.max_seconds))
        if video_processor is not None:
            expected.append(("video", video_processor.max_seconds))
        with open_media(path) as container:
            streams = {"audio": container.streams.audio, "video": container.streams.video}
            present = [(kind, limit) for kind, limit in expected if streams[kind]]
            if not present:
                wanted = " or ".join(kind for kind, _ in expected)
                raise MediaError(
                    f"{path}: no {wanted} stream; this checkpoint reads {wanted} (expected a video with an "
                    "audio track, an audio file or a video file)"
                )
            for kind, limit in present:
                stream = streams[kind][0]
                if stream.duration is not None and stream.time_base is not None:
                    seconds = float(stream.duration * stream.time_base)
                elif container.duration is not None:
                    seconds = container.duration / 1_000_000  # container durations are in microseconds
                else:
                    continue  # unknown here; the extractor stops decoding past its limit
                if seconds > limit:
                    raise MediaError(
                        f"{path}: {kind} lasts {seconds:.1f} s, longer than the {kind} extractor's "
                        f"max_seconds={limit:g}; cut the clip or raise max_seconds"
                    )

    def _transcribe(self, item: dict[str, Any], asr_model: Pipeline) -> str:
        if "media" not in item:
            raise ValueError("asr_model= transcribes a media file; an input of features needs text=")
        sampling_rate = asr_model.feature_extractor.sampling_rate
        waveform = load_audio(item["media"], sampling_rate)
        if waveform is None:
            raise MediaError(f"{item['media']}: no audio stream to transcribe for asr_model=; pass text=")
        return asr_model({"raw": waveform, "sampling_rate": sampling_rate})["text"].strip()

    def _check_all(self, items: Sequence[dict[str, Any]], asr_model: Pipeline | None = None) -> None:
        """The cheap checks of every input, before any extraction or model compute."""
        for item in items:
            if item.get("text") is None and asr_model is None:
                raise ValueError(
                    f"{item.get('media', 'input')}: no transcript; pass text= (what is said in the clip) or "
                    "asr_model= (a transformers speech-recognition model that transcribes its audio)"
                )
            if "media" in item:
                self.check_media(item["media"])

    def _collate(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return self.processor(
            text=[sample["text"] for sample in samples],
            audio=[sample["audio"] for sample in samples],
            video=[sample["video"] for sample in samples],
        )

    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        self._check_all([inputs], **preprocess_params)
        model_inputs = self._collate([self.preprocess(inputs, **preprocess_params)])
        return self.postprocess(self.forward(model_inputs, **forward_params), **postprocess_params)

    def get_iterator(
        self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params, postprocess_params
    ):
        # Every file is checked, then every input read, before the model runs: a bad file in a list fails the
        # call up front, not after the batches before it. Features are small, so holding them all is cheap.
        inputs = list(inputs)
        self._check_all(inputs, **preprocess_params)
        samples = [self.preprocess(item, **preprocess_params) for item in inputs]
        loader = DataLoader(samples, batch_size=batch_size, collate_fn=self._collate)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`scores` `(batch, num_labels)` in `label_names` order (classification) or `values` `(batch,)`."""
        constraint = self.processor.answer_logits_processor()
        if self.processor.task == "classification":
            probabilities = self.model.predict(
                **model_inputs, answer_constraint=constraint, return_scores=True
            )
            names = self.processor.label_names
            return {"scores": torch.tensor([[row[name] for name in names] for row in probabilities])}
        values = self.model.predict(**model_inputs, answer_constraint=constraint)
        return {"values": torch.tensor(values, dtype=torch.float64)}

    def postprocess(self, model_outputs: dict[str, torch.Tensor], top_k: int | None = 1):
        if "values" in model_outputs:
            return {"label": REGRESSION_LABEL, "score": float(model_outputs["values"][0])}
        scores = model_outputs["scores"][0].tolist()
        ranked = sorted(
            (
                {"label": name, "score": score}
                for name, score in zip(self.processor.label_names, scores, strict=True)
            ),
            key=lambda entry: entry["score"],
            reverse=True,
        )
        return ranked if top_k is None else ranked[:top_k]


def custom_pipelines() -> dict[str, dict[str, Any]]:
    """The `config.custom_pipelines` entry (the form `Pipeline.save_pretrained` writes) with which
    `pipeline(model=folder, trust_remote_code=True)` picks this pipeline without a task name."""
    return {
        PIPELINE_TASK: {
            "impl": f"{__name__.rsplit('.', 1)[-1]}.{MSEAdapterPipeline.__name__}",
            "pt": [AutoModelForCausalLM.__name__],
            "type": "multimodal",
        }
    }


# For in-process use: `pipeline("multimodal-sentiment-analysis", model=model, processor=processor)`. The
# first import registers; a checkpoint's copy of this module (loaded as remote code) leaves that entry alone.
if PIPELINE_TASK not in PIPELINE_REGISTRY.supported_tasks:
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK, pipeline_class=MSEAdapterPipeline, pt_model=AutoModelForCausalLM, type="multimodal"
    )
