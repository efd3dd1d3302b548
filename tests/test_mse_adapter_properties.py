"""Property-based tests (Hypothesis) of MSEAdapterProcessor.__call__ and MSEAdapterForCausalLM.forward.

Random texts (any string, the `<pseudo>` placeholder, non-strings, empty and over-long batches), feature
arrays (shapes with 0 frames or 0 width, float16/32/64, int, bool, complex and object dtypes, NaN/Inf, up to
hundreds of frames) and labels. Each call either raises a ValueError / TypeError, or returns a result that a
short independent statement of the documented contract predicts exactly: the right rows, lengths, feature
values and label tokens. The contract also says which inputs must be refused, so a refused valid input and an
accepted invalid one both fail. Never another exception, never a silent wrong answer.
"""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from conftest import TINY_LM_CONFIGS, build_tiny_tokenizer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from transformers import AutoConfig, AutoModelForCausalLM

from modeling_mse_adapter import MSEAdapterForCausalLM
from processing_mse_adapter import IGNORE_INDEX, MSEAdapterProcessor
from tasks_mse_adapter import format_regression_label

FAST = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
LABELS = ["negative", "neutral", "positive"]
AUDIO_DIM, VIDEO_DIM = 6, 4
LONG_FRAMES = 300  # far more frames than any utterance has tokens


@pytest.fixture(scope="module")
def processors():
    """A classification processor with declared feature widths and a regression one without."""
    classification = MSEAdapterProcessor(
        build_tiny_tokenizer(),
        task="classification",
        label_names=LABELS,
        num_pseudo_tokens=3,
        audio_feature_dim=AUDIO_DIM,
        video_feature_dim=VIDEO_DIM,
    )
    regression = MSEAdapterProcessor(build_tiny_tokenizer(), task="regression", value_range=(-3.0, 3.0))
    return {"classification": classification, "regression": regression}


# ------------------------------------------------------------------ inputs

utterances = st.one_of(
    st.text(max_size=20),
    st.text(alphabet="I love this movie ", min_size=300, max_size=600),  # past model_max_length: truncated
    st.builds(lambda left, right: f"{left}<pseudo>{right}", st.text(max_size=5), st.text(max_size=5)),
)
texts = st.one_of(
    utterances,
    st.lists(utterances, min_size=0, max_size=3),
    st.tuples(utterances, utterances),
    st.lists(st.one_of(utterances, st.integers(), st.none()), min_size=1, max_size=2),
    st.none(),
    st.integers(),
    st.binary(max_size=4),
)
feature_dtypes = st.one_of(
    st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8]),
    hnp.boolean_dtypes(),
    hnp.complex_number_dtypes(endianness="="),  # torch reads native byte order only
)


def clean_features(width: int):
    """A finite `(frames, width)` array of a real dtype (0 frames = missing modality), or None."""
    real_dtypes = st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8])
    shapes = st.one_of(st.tuples(st.integers(0, 5), st.just(width)), st.just((LONG_FRAMES, width)))
    sample = real_dtypes.flatmap(
        lambda dtype: hnp.arrays(
            dtype, shapes, elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False, allow_infinity=False)
        )
    )
    return st.one_of(st.none(), sample)


def wild_features(width: int):
    """One sample's features, each kind of bad input as likely as a clean one: bool, complex and object
    dtypes, zero width, a wrong width or rank, NaN/Inf, values beyond float32, any shape and dtype."""
    frames = st.integers(1, 4)
    return st.one_of(
        clean_features(width),
        hnp.arrays(np.bool_, st.tuples(frames, st.just(width))),
        hnp.arrays(hnp.complex_number_dtypes(endianness="="), st.tuples(frames, st.just(width))),
        hnp.arrays(
            np.dtype(object),
            st.tuples(frames, st.just(width)),
            elements=st.one_of(st.floats(-2, 2), st.text(max_size=2), st.none()),
        ),
        hnp.arrays(np.float32, st.tuples(frames, st.sampled_from([0, 1, width + 1]))),
        hnp.arrays(np.float64, st.tuples(frames, st.just(width))),  # NaN, Inf and |x| > 3.4e38 included
        hnp.arrays(feature_dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
    )


def feature_batches(width: int, batch_size: int):
    samples = st.lists(wild_features(width), min_size=batch_size, max_size=batch_size)
    return st.one_of(
        samples,
        samples,
        samples,
        st.none(),
        st.lists(clean_features(width), min_size=batch_size + 1, max_size=batch_size + 1),
        st.text(max_size=3),
        st.integers(),
    )


label_values = st.one_of(
    st.sampled_from([*LABELS, "happy"]),
    st.integers(-2, 4),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-3.5, 3.5),
    st.booleans(),
    st.none(),
    st.complex_numbers(max_magnitude=2),
)


def label_batches(batch_size: int):
    return st.one_of(
        st.none(),
        st.lists(label_values, min_size=batch_size, max_size=batch_size),
        st.lists(label_values, min_size=batch_size + 1, max_size=batch_size + 1),
        label_values,
    )


# Well-formed inputs, for every argument but (at most) one: clean utterances, finite real features of the
# right width, labels of the task.
clean_utterances = st.one_of(
    st.text(max_size=20).filter(lambda text: "<pseudo>" not in text),
    st.text(alphabet="I love this movie ", min_size=300, max_size=600),
)
clean_texts = st.one_of(clean_utterances, st.lists(clean_utterances, min_size=1, max_size=3))


def clean_feature_batches(width: int, batch_size: int):
    return st.one_of(st.none(), st.lists(clean_features(width), min_size=batch_size, max_size=batch_size))


def clean_label_batches(task: str, batch_size: int):
    if task == "classification":
        label = st.one_of(st.sampled_from(LABELS), st.integers(0, len(LABELS) - 1))
    else:
        label = st.one_of(st.floats(-3.0, 3.0), st.integers(-3, 3))
    return st.one_of(st.none(), st.lists(label, min_size=batch_size, max_size=batch_size))


# ------------------------------------------------------------------ the contract, stated independently


class Refused(Exception):
    """The contract says the input must be refused with a ValueError or TypeError."""


def contract_texts(text) -> list[str]:
    if isinstance(text, str):
        batch = [text]
    elif isinstance(text, (list, tuple)):
        batch = list(text)
    else:
        raise Refused
    if not batch or not all(isinstance(utterance, str) for utterance in batch):
        raise Refused
    if any("<pseudo>" in utterance for utterance in batch):
        raise Refused
    return batch


def contract_features(samples, batch_size: int, feature_dim: int | None) -> tuple[np.ndarray, list[int]]:
    """`(batch, max_frames, dim)` float32 and the true lengths, from the processor's documented rules."""
    if samples is None:
        samples = [None] * batch_size
    if not isinstance(samples, list) or len(samples) != batch_size:
        raise Refused
    present: list[np.ndarray | None] = []
    for sample in samples:
        if sample is None:
            present.append(None)
            continue
        if sample.dtype.kind not in "iuf":  # bool, complex, object
            raise Refused
        if (sample.ndim == 1 and sample.size == 0) or (sample.ndim == 2 and sample.shape[0] == 0):
            present.append(None)
            continue
        if sample.ndim != 2 or sample.shape[1] == 0:
            raise Refused
        feature_dim = feature_dim or sample.shape[1]
        if sample.shape[1] != feature_dim:
            raise Refused
        with np.errstate(over="ignore", invalid="ignore"):
            as_float32 = sample.astype(np.float32)
        if not np.isfinite(sample).all() or not np.isfinite(as_float32).all():
            raise Refused
        present.append(as_float32)
    lengths = [0 if values is None else len(values) for values in present]
    padded = np.zeros((batch_size, max(lengths), feature_dim or 0), dtype=np.float32)
    for index, values in enumerate(present):
        if values is not None:
            padded[index, : len(values)] = values
    return padded, lengths


def contract_answers(labels, single_text: bool, batch_size: int, processor) -> list[str] | None:
    """The answer text of every sample (class index or one-decimal value), or None without labels."""
    if labels is None:
        return None
    if not isinstance(labels, list):
        if not single_text:
            raise Refused
        labels = [labels]
    if len(labels) != batch_size:
        raise Refused
    answers = []
    for label in labels:
        if processor.task == "classification":
            if isinstance(label, str) and label in LABELS:
                answers.append(str(LABELS.index(label)))
            elif type(label) is int and 0 <= label < len(LABELS):
                answers.append(str(label))
            else:
                raise Refused
        else:
            if type(label) not in (int, float) or not math.isfinite(label) or not -3.0 <= label <= 3.0:
                raise Refused
            answers.append(format_regression_label(label))
    return answers


def encode(processor, text: str) -> list[int]:
    return processor.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def check_batch(processor, batch, utterances_, answers, audio, video) -> None:
    """Every output of the processor against the contract's prediction."""
    tokenizer = processor.tokenizer
    longest_answer = max(len(ids) for ids in processor.answer_logits_processor().answer_token_ids)
    batch_size, seq_len = batch["input_ids"].shape
    assert batch_size == len(utterances_) and seq_len <= tokenizer.model_max_length
    for row, utterance in enumerate(utterances_):
        mask = batch["attention_mask"][row]
        start = int((mask == 0).sum())
        assert mask[start:].all()  # left padding, then only real tokens
        ids = batch["input_ids"][row, start:].tolist()
        assert ids.count(processor.pseudo_token_id) == processor.num_pseudo_tokens
        utterance_ids = batch["input_ids"][row][batch["utterance_mask"][row].bool()].tolist()
        target = [] if answers is None else [*encode(processor, answers[row]), tokenizer.eos_token_id]
        # Truncation keeps room for the placeholders, markers, prompt and the longest answer.
        fixed_length = len(ids) - len(utterance_ids) - len(target)
        budget = tokenizer.model_max_length - fixed_length - longest_answer
        assert utterance_ids == encode(processor, utterance)[:budget]
        tail = encode(processor, processor.task_prompt)
        if answers is not None:
            supervised = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
            assert supervised == target
            tail = tail + target
        assert ids[-len(tail) :] == tail
    assert ("labels" in batch) == (answers is not None)
    for name, (padded, lengths) in (("audio", audio), ("video", video)):
        assert batch[f"{name}_values"].dtype == torch.float32
        assert batch[f"{name}_lengths"].tolist() == lengths
        np.testing.assert_array_equal(batch[f"{name}_values"].numpy(), padded)


# ------------------------------------------------------------------ properties


@pytest.mark.parametrize("wild", ["text", "audio", "video", "labels"])
@FAST
@given(data=st.data())
def test_processor_refuses_clearly_or_returns_exactly_the_contract(processors, wild, data):
    task = data.draw(st.sampled_from(sorted(processors)), label="task")
    processor = processors[task]
    # Only the `wild` argument is drawn from the wild strategies (the others are well formed), so that each
    # kind of bad input is tried often and a refusal can only be due to that argument.
    text = data.draw(texts if wild == "text" else clean_texts, label="text")
    batch_size = len(text) if isinstance(text, (list, tuple)) else 1
    audio_dim = AUDIO_DIM if processor.audio_feature_dim else 5
    audio_strategy = feature_batches if wild == "audio" else clean_feature_batches
    audio = data.draw(audio_strategy(audio_dim, batch_size), label="audio")
    video_strategy = feature_batches if wild == "video" else clean_feature_batches
    video = data.draw(video_strategy(VIDEO_DIM, batch_size), label="video")
    labels = data.draw(
        label_batches(batch_size) if wild == "labels" else clean_label_batches(task, batch_size),
        label="labels",
    )
    try:
        utterances_ = contract_texts(text)
        expected_audio = contract_features(audio, len(utterances_), processor.audio_feature_dim)
        expected_video = contract_features(video, len(utterances_), processor.video_feature_dim)
        answers = contract_answers(labels, isinstance(text, str), len(utterances_), processor)
    except Refused:
        event("refused")
        with pytest.raises((ValueError, TypeError)) as refusal:
            processor(text=text, audio=audio, video=video, labels=labels)
        assert str(refusal.value)  # a message, never an empty error
        return
    event("accepted")
    batch = processor(text=text, audio=audio, video=video, labels=labels)
    check_batch(processor, batch, utterances_, answers, expected_audio, expected_video)


@pytest.fixture(scope="module")
def tiny_model(processors):
    """A tiny Llama backbone built from a config, with an adapter for the classification processor."""
    processor = processors["classification"]
    config = AutoConfig.for_model(
        "llama",
        vocab_size=len(processor.tokenizer),
        pad_token_id=processor.tokenizer.pad_token_id,
        **TINY_LM_CONFIGS["llama"],
    )
    torch.manual_seed(0)
    backbone = AutoModelForCausalLM.from_config(config)
    return MSEAdapterForCausalLM.from_language_model(backbone, processor).eval()


def tensors(shape_strategy, dtypes=feature_dtypes):
    return hnp.arrays(dtype=dtypes, shape=shape_strategy).map(torch.from_numpy)


def contract_modality(values: torch.Tensor, lengths: torch.Tensor, feature_dim: int, batch_size: int) -> None:
    """Raise Refused unless the padded features and lengths are what the model documents."""
    if values.dtype == torch.bool or values.is_complex() or values.ndim != 3 or values.shape[0] != batch_size:
        raise Refused
    if values.shape[1] > 0 and values.shape[2] != feature_dim:
        raise Refused
    if not torch.isfinite(values).all() or not torch.isfinite(values.to(torch.float32)).all():
        raise Refused
    if lengths.dtype in (torch.bool,) or lengths.is_floating_point() or lengths.is_complex():
        raise Refused
    if lengths.shape != (batch_size,) or (lengths < 0).any() or (lengths > values.shape[1]).any():
        raise Refused


@FAST
@given(data=st.data())
def test_forward_refuses_clearly_or_matches_the_float32_features(processors, tiny_model, data):
    processor = processors["classification"]
    batch = processor(
        text=["I love this movie", "bad"],
        audio=[np.ones((3, AUDIO_DIM)), None],
        video=[np.ones((2, VIDEO_DIM)), np.ones((1, VIDEO_DIM))],
    )
    batch_size, seq_len = batch["input_ids"].shape
    frames = data.draw(st.sampled_from([0, 1, 4, LONG_FRAMES]), label="frames")
    audio_values = data.draw(
        st.one_of(
            tensors(st.just((batch_size, frames, AUDIO_DIM))),
            tensors(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)),
        ),
        label="audio_values",
    )
    audio_lengths = data.draw(
        st.one_of(
            tensors(st.just((batch_size,)), st.sampled_from([np.int64, np.int32, np.float32, np.bool_])).map(
                lambda lengths: lengths.clamp(-1, LONG_FRAMES + 1) if lengths.dtype != torch.bool else lengths
            ),
            st.integers(0, frames).map(lambda length: torch.tensor([length, frames // 2])),
        ),
        label="audio_lengths",
    )
    utterance_mask = data.draw(
        st.one_of(
            st.just(batch["utterance_mask"]),
            tensors(st.just((batch_size, seq_len)), st.sampled_from([np.float32, np.int64, np.bool_])),
        ),
        label="utterance_mask",
    )
    inputs = {**batch, "audio_values": audio_values, "audio_lengths": audio_lengths}
    inputs["utterance_mask"] = utterance_mask
    try:
        contract_modality(audio_values, audio_lengths, AUDIO_DIM, batch_size)
        if not ((utterance_mask == 0) | (utterance_mask == 1)).all():
            raise Refused
    except Refused:
        event("refused")
        with pytest.raises((ValueError, TypeError)) as refusal, torch.no_grad():
            tiny_model(**inputs)
        assert str(refusal.value)
        return
    with torch.no_grad():
        logits = tiny_model(**inputs).logits
        # The result depends only on the features as float32 values and on the true lengths.
        reference = tiny_model(
            **{
                **inputs,
                "audio_values": audio_values.to(torch.float32),
                "audio_lengths": audio_lengths.long(),
            }
        ).logits
    assert logits.shape == (batch_size, seq_len, tiny_model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits, reference, rtol=0, atol=0)


@FAST
@given(data=st.data())
def test_forward_refuses_bad_token_ids_and_labels(processors, tiny_model, data):
    processor = processors["classification"]
    batch = processor(text=["I love this movie", "bad"], audio=[np.ones((3, AUDIO_DIM)), None], labels=[0, 2])
    vocab_size = tiny_model.get_input_embeddings().num_embeddings
    field = data.draw(st.sampled_from(["input_ids", "labels"]), label="field")
    replacement = data.draw(
        st.one_of(
            hnp.arrays(
                st.sampled_from([np.int64, np.int32]),
                tuple(batch[field].shape),
                elements=st.integers(0, vocab_size - 1),
            ).map(torch.from_numpy),
            tensors(
                st.just(tuple(batch[field].shape)),
                st.sampled_from([np.int64, np.int32, np.float32, np.bool_]),
            ).map(lambda ids: ids.clamp(-200, 2 * vocab_size) if ids.dtype != torch.bool else ids),
            tensors(
                hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
                hnp.integer_dtypes(endianness="="),
            ),
        ),
        label=field,
    )
    inputs = {**batch, field: replacement}
    if field == "input_ids":
        # Keep the placeholders where the processor put them so that only the ids' own validity is tested.
        is_pseudo = batch["input_ids"] == processor.pseudo_token_id
        if replacement.shape == batch["input_ids"].shape and not replacement.is_floating_point():
            inputs["input_ids"] = replacement.to(torch.long).masked_fill(is_pseudo, processor.pseudo_token_id)
    ids = inputs[field]
    valid_dtype = not (ids.is_floating_point() or ids.dtype == torch.bool)
    valid_shape = ids.shape == batch[field].shape
    valid = valid_dtype and valid_shape
    if valid:
        ids = ids.long()
        allowed = ids[ids != (processor.pseudo_token_id if field == "input_ids" else IGNORE_INDEX)]
        valid = allowed.numel() == 0 or (allowed.min() >= 0 and allowed.max() < vocab_size)
        pseudo_counts = (inputs["input_ids"] == processor.pseudo_token_id).sum(dim=-1)
        valid = valid and bool((pseudo_counts == processor.num_pseudo_tokens).all())
    event("valid" if valid else "refused")
    if not valid:
        with pytest.raises((ValueError, TypeError)) as refusal, torch.no_grad():
            tiny_model(**inputs)
        assert str(refusal.value)
        return
    with torch.no_grad():
        outputs = tiny_model(**inputs)
    assert torch.isfinite(outputs.logits).all() and torch.isfinite(outputs.loss)


# ------------------------------------------------------------------ examples, with their exact messages


def bad_forward_inputs(batch, pseudo_token_id):
    """(change to the processor's batch, error, message) for each kind of bad model input."""
    ids, labels = batch["input_ids"], batch["labels"]
    return [
        ({"audio_values": batch["audio_values"].bool()}, TypeError, "audio_values must hold real numbers"),
        (
            {"video_values": batch["video_values"].to(torch.complex64)},
            TypeError,
            r"^video_values must hold real numbers \(float or int\), got dtype torch.complex64$",
        ),
        ({"audio_values": batch["audio_values"].numpy()}, TypeError, "^audio_values must be a torch.Tensor"),
        (
            {"audio_values": batch["audio_values"].double() * 1e300},
            ValueError,
            r"^audio_values must be finite in the adapter's dtype torch.float32, got values beyond its range",
        ),
        (
            {"audio_lengths": batch["audio_lengths"].bool()},
            ValueError,
            r"^audio_lengths must be an integer tensor of shape \(2,\), got torch.bool",
        ),
        (
            {"utterance_mask": batch["utterance_mask"].float() * float("nan")},
            ValueError,
            r"^utterance_mask must hold only 0 and 1",
        ),
        (
            {"input_ids": ids.float()},
            TypeError,
            "^input_ids must hold integer token ids, got dtype torch.float32$",
        ),
        (
            {"input_ids": ids[0]},
            ValueError,
            r"^input_ids must be \(batch, seq_len\) with at least one row and one token, got shape",
        ),
        (
            {"input_ids": ids.masked_fill(batch["attention_mask"] == 0, -5)},
            ValueError,
            rf"^input_ids must lie in \[0, \d+\] \(the backbone vocabulary\) apart from the <pseudo> id "
            rf"{pseudo_token_id} \(config\.pseudo_token_id, which must be the processor's pseudo_token_id\), "
            r"got ids from -5 to",
        ),
        ({"labels": labels.float()}, TypeError, "^labels must hold integer token ids or -100, got dtype"),
        (
            {"labels": labels[:, :3]},
            ValueError,
            r"^labels must have the shape of input_ids \(2, \d+\), got \(2, 3\)$",
        ),
        (
            {"labels": labels.masked_fill(labels != IGNORE_INDEX, 10**6)},
            ValueError,
            r"^labels must be -100 or token ids in \[0, \d+\], got ids from 1000000 to 1000000$",
        ),
    ]


def test_bad_forward_inputs_raise_clear_errors_and_int32_labels_train(processors, tiny_model):
    processor = processors["classification"]
    batch = processor(
        text=["I love this movie", "bad"],
        audio=[np.ones((3, AUDIO_DIM)), None],
        video=[np.ones((2, VIDEO_DIM)), np.ones((1, VIDEO_DIM))],
        labels=["positive", 0],
    )
    for change, error, message in bad_forward_inputs(batch, processor.pseudo_token_id):
        with pytest.raises(error, match=message), torch.no_grad():
            tiny_model(**{**batch, **change})
    # Found by the property test: int32 labels (e.g. from a numpy collator) reached the loss unconverted.
    with torch.no_grad():
        int64_loss = tiny_model(**batch).loss
        int32_loss = tiny_model(**{**batch, "labels": batch["labels"].int()}).loss
    torch.testing.assert_close(int32_loss, int64_loss, rtol=0, atol=0)
