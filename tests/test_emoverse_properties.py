"""Property-based test (Hypothesis) of EmoVerseProcessor.__call__: random texts (placeholder counts,
non-strings, empty batches) and images (PIL images of any size including 0 x 0, arrays and tensors of any
rank, shape, dtype - integer, float16/32/64, bool, complex, object - with NaN / Inf). Each call either raises
a ValueError / TypeError, or returns exactly what a short independent statement of the contract predicts: one
row per text, `image_seq_length` image tokens per placeholder, and finite `(num_images, 3, 32, 32)` pixel
values. The contract also says which inputs must be refused, so a refused valid input and an accepted invalid
one both fail. Never another exception.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytest_plugins = ["test_emoverse_common"]  # the shared EmoVerse fixtures

FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
DTYPES = ["uint8", "int16", "int64", "float16", "float32", "float64", "bool", "complex64", "object"]


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    side = st.integers(1, 9)
    image_shapes = st.one_of(
        st.tuples(side, side, st.sampled_from([1, 3, 4])),  # (H, W, C)
        st.tuples(st.sampled_from([1, 3, 4]), side, side),  # (C, H, W)
        st.tuples(side, side),  # (H, W)
    )
    shape = draw(image_shapes | hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9))
    if dtype.kind == "O":
        return np.empty(shape, dtype=object)
    if dtype.kind in "fc":
        elements = st.floats(-1e4, 1e4, width=16 if dtype == np.float16 else 32) | st.sampled_from(
            [float("nan"), float("inf"), -float("inf")]
        )
    elif dtype.kind == "b":
        elements = st.booleans()
    else:
        elements = st.integers(0, 255)
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    return torch.from_numpy(array) if draw(st.booleans()) and dtype.kind not in "cO" else array


def pil_images():
    from PIL import Image

    return st.builds(lambda w, h: Image.new("RGB", (w, h), (9, 8, 7)), st.integers(0, 6), st.integers(0, 6))


images = st.one_of(arrays(), pil_images(), st.integers(), st.none())


@st.composite
def texts(draw, num_images: int):
    """Mostly texts holding one placeholder per image (split over 1-2 samples), sometimes a wrong count or a
    text that is not a string / list of strings."""
    kind = draw(st.sampled_from(["matching"] * 6 + ["one string", "wrong count", "not text"]))
    if kind == "not text":
        return draw(st.one_of(st.integers(), st.none(), st.just([]), st.just(["<image>", None])))
    if kind == "one string":
        return "say " + "<image> " * num_images
    count = num_images + (draw(st.sampled_from([-1, 1])) if kind == "wrong count" else 0)
    first = draw(st.integers(0, max(count, 0)))
    return ["a " + "<image>" * first, "b " + "<image>" * max(count - first, 0)][: draw(st.integers(1, 2))]


def image_is_valid(image) -> bool:
    """The documented contract: a non-empty PIL image, or a real-valued finite (H, W), (H, W, C) or (C, H, W)
    array / tensor with C in 1, 3, 4."""
    if hasattr(image, "getpixel"):
        return image.width > 0 and image.height > 0
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        return False
    array = image.numpy() if isinstance(image, torch.Tensor) else image
    if array.dtype.kind not in "uif" or array.ndim not in (2, 3):
        return False
    if array.ndim == 3:
        if array.shape[-1] in (1, 3, 4):
            height, width = array.shape[:2]
        elif array.shape[0] in (1, 3, 4):
            height, width = array.shape[1:]
        else:
            return False
    else:
        height, width = array.shape
    return height > 0 and width > 0 and bool(np.isfinite(array).all())


@FAST
@given(data=st.data(), image_list=st.lists(images, max_size=3))
def test_processor_gives_a_clear_error_or_the_documented_batch(emoverse_processor, data, image_list):
    text = data.draw(texts(len(image_list)))
    sample_texts = [text] if isinstance(text, str) else text
    valid = (
        isinstance(sample_texts, list)
        and len(sample_texts) > 0
        and all(isinstance(sample, str) for sample in sample_texts)
        and sum(sample.count("<image>") for sample in sample_texts) == len(image_list)
        and all(image_is_valid(image) for image in image_list)
    )
    try:
        batch = emoverse_processor(text=text, images=image_list)
    except (ValueError, TypeError) as error:
        event(f"refused: {type(error).__name__}")
        assert not valid, f"a valid input was refused: {error}"
        return
    assert valid, "an invalid input was accepted"
    event("accepted")
    image_tokens = (batch["input_ids"] == emoverse_processor.image_token_id).sum(dim=1).tolist()
    assert image_tokens == [4 * sample.count("<image>") for sample in sample_texts]
    if image_list:
        assert batch["pixel_values"].shape == (len(image_list), 3, 32, 32)
        assert torch.isfinite(batch["pixel_values"]).all()
    else:
        assert "pixel_values" not in batch
