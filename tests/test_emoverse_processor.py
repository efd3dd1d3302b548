"""EmoVerse processor: image conversion, EMT records, and every bad input the issue lists."""

from __future__ import annotations

import pytest
import torch
from test_emoverse_common import solid_image_path

from processing_emoverse import DEFAULT_SYSTEM_PROMPT, EmoVerseProcessor

pytest_plugins = ["test_emoverse_common"]  # the shared EmoVerse fixtures


def test_default_system_prompt_is_the_papers():
    assert DEFAULT_SYSTEM_PROMPT == "You are an sentiment and emotion analysis expert."


def test_grayscale_rgba_palette_and_odd_sized_images_are_converted(emoverse_processor, tmp_path):
    from PIL import Image

    images = [
        Image.new("L", (31, 17), 90),
        Image.new("RGBA", (8, 200), (1, 2, 3, 4)),
        Image.new("P", (33, 33)),
    ]
    path = tmp_path / "gray.png"
    Image.new("L", (45, 13), 200).save(path)
    batch = emoverse_processor(text=["<image>" * 4], images=[*images, str(path)])
    assert batch["pixel_values"].shape == (4, 3, 32, 32)
    # grayscale becomes three identical channels before normalisation with per-channel statistics
    gray = batch["pixel_values"][0]
    mean = torch.tensor(emoverse_processor.image_processor.image_mean).view(3, 1, 1)
    std = torch.tensor(emoverse_processor.image_processor.image_std).view(3, 1, 1)
    restored = gray * std + mean
    torch.testing.assert_close(restored[0], restored[1], atol=1e-5, rtol=0)


def test_emt_record_without_placeholder_gets_one_per_image_and_custom_system(emoverse_processor, tmp_path):
    images = [solid_image_path(tmp_path, f"{i}.png", (i * 40, 0, 0)) for i in range(2)]
    record = {"query": "Compare.", "response": "Same.", "images": images, "system": "Be brief."}
    batch = emoverse_processor.process_emt_records([record])
    assert (batch["input_ids"] == emoverse_processor.image_token_id).sum() == 2 * 4
    assert batch["pixel_values"].shape[0] == 2
    text = emoverse_processor.tokenizer.decode(batch["input_ids"][0])
    assert "Be brief." in text and DEFAULT_SYSTEM_PROMPT not in text


def test_generation_inputs_end_with_the_assistant_turn(emoverse_processor, tmp_path):
    record = {"query": "How?", "images": [solid_image_path(tmp_path, "a.png", (1, 2, 3))]}
    batch = emoverse_processor.process_emt_records([record], training=False)
    text = emoverse_processor.tokenizer.decode(batch["input_ids"][0])
    assert text.endswith("<|im_start|>assistant\n")


def test_saved_processor_round_trips(emoverse_processor, tmp_path):
    emoverse_processor.save_pretrained(tmp_path)
    reloaded = EmoVerseProcessor.from_pretrained(tmp_path)
    assert reloaded.image_token_id == emoverse_processor.image_token_id
    assert (reloaded.image_seq_length, reloaded.system_prompt) == (4, DEFAULT_SYSTEM_PROMPT)
    from PIL import Image

    image = Image.new("RGB", (50, 20), (9, 99, 199))
    first = emoverse_processor(text=["x <image>"], images=[image])
    second = reloaded(text=["x <image>"], images=[image])
    for key in first:
        torch.testing.assert_close(first[key], second[key])


# ------------------------------------------------------------------------------------------------ bad input
def test_image_count_must_match_placeholders(emoverse_processor):
    from PIL import Image

    with pytest.raises(ValueError, match=r"got 1 image\(s\) but the text holds 2 '<image>' placeholder"):
        emoverse_processor(text=["<image> and <image>"], images=[Image.new("RGB", (4, 4))])
    record = {"query": "<image> <image>", "response": "x", "images": ["a.png"]}
    with pytest.raises(ValueError, match=r"1 image\(s\) but its query holds 2"):
        emoverse_processor.process_emt_records([record])


@pytest.mark.parametrize("blank", ["", " \n\t"])
def test_a_blank_prompt_is_refused_naming_its_index(emoverse_processor, blank):
    with pytest.raises(ValueError) as error:
        emoverse_processor(text=["a prompt", blank])
    assert str(error.value) == f"text[1] is {blank!r}; expected a non-blank prompt"
    with pytest.raises(ValueError, match=r"^text\[0\] is "):
        emoverse_processor(text=blank)


def test_a_missing_image_processor_or_tokenizer_path_names_the_part(emoverse_parts, tmp_path):
    vision_dir, text_dir = emoverse_parts
    missing = str(tmp_path / "no" / "such")
    neither = "neither an existing folder nor a Hub model id ('name' or 'namespace/name')"
    with pytest.raises(ValueError) as error:
        EmoVerseProcessor.from_parts(missing, text_dir, image_seq_length=4)
    assert str(error.value) == f"image_processor (the vision tower's) is {missing!r}: {neither}"
    with pytest.raises(ValueError) as error:
        EmoVerseProcessor.from_parts(vision_dir, missing, image_seq_length=4)
    assert str(error.value) == f"tokenizer (the language model's) is {missing!r}: {neither}"


def test_missing_and_corrupt_image_files_name_the_path(emoverse_processor, tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        emoverse_processor(text=["<image>"], images=[str(missing)])
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(ValueError, match=f"cannot read image file {corrupt}"):
        emoverse_processor(text=["<image>"], images=[str(corrupt)])


def test_prompt_pushed_past_max_length_by_placeholders(emoverse_parts):
    vision_dir, text_dir = emoverse_parts
    processor = EmoVerseProcessor.from_parts(vision_dir, text_dir, image_seq_length=20, max_length=64)
    from PIL import Image

    text = "<image>" * 3 + " hello"  # 60 visual tokens + text > 64
    with pytest.raises(
        ValueError, match=r"sample 0 is \d+ tokens long after expanding 3 image\(s\) to 20 tokens"
    ):
        processor(text=[text], images=[Image.new("RGB", (8, 8))] * 3)


def test_emt_record_without_query(emoverse_processor):
    with pytest.raises(ValueError, match=r"EMT record 1 has no 'query'.*got keys \['images', 'response'\]"):
        emoverse_processor.process_emt_records(
            [{"query": "ok", "response": "y"}, {"response": "x", "images": []}]
        )
    with pytest.raises(ValueError, match="has no 'response'"):
        emoverse_processor.process_emt_records([{"query": "ok"}], training=True)


def test_empty_wrongly_shaped_and_non_finite_images_are_refused(emoverse_processor):
    import numpy as np
    from PIL import Image

    def call(*images):
        return emoverse_processor(text=["<image>" * len(images)], images=list(images))

    with pytest.raises(ValueError, match=r"image 0 is 0x0 pixels; expected at least 1x1"):
        call(Image.new("RGB", (0, 0)))
    with pytest.raises(ValueError, match=r"image 1 is 0x4 pixels; expected at least 1x1"):
        call(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 0, 3), np.uint8))
    with pytest.raises(
        ValueError,
        match=r"image 0: expected an \(H, W\), \(H, W, C\) or \(C, H, W\) array with C in \(1, 3, 4\), "
        r"got shape \(8, 8, 5\)",
    ):
        call(np.zeros((8, 8, 5), np.uint8))
    nan_image = np.full((8, 8, 3), 0.5, np.float32)
    nan_image[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"image 1 holds NaN or Inf pixel values; expected finite values"):
        call(np.zeros((8, 8, 3), np.float32), nan_image)
    with pytest.raises(TypeError, match=r"image 0: expected real-valued pixels, got dtype torch\.bool"):
        call(np.ones((8, 8, 3), bool))
    with pytest.raises(ValueError, match=r"images \[0\] give NaN or Inf pixel_values; expected finite pixel"):
        call(np.full((8, 8, 3), 1e300))  # finite float64, beyond float32 after preprocessing
    # accepted layouts: (H, W), (H, W, 1), (C, H, W), RGBA arrays and tensors
    batch = call(np.zeros((5, 7)), np.zeros((5, 7, 1)), np.zeros((3, 5, 7)), torch.zeros(6, 6, 4))
    assert batch["pixel_values"].shape == (4, 3, 32, 32)


def test_model_refuses_non_finite_or_misshaped_pixel_values_before_compute(
    emoverse_model, emoverse_processor
):
    from PIL import Image

    batch = emoverse_processor(text=["<image> a", "<image> b"], images=[Image.new("RGB", (9, 9))] * 2)
    calls = []
    hook = emoverse_model.vision_tower.register_forward_pre_hook(lambda *args: calls.append(args))
    bad = batch["pixel_values"].clone()
    bad[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"pixel_values of images \[1\] hold NaN or Inf; expected finite"):
        emoverse_model(**{**batch, "pixel_values": bad})
    with pytest.raises(ValueError, match=r"pixel_values must be a float tensor of shape \(num_images, chan"):
        emoverse_model(**{**batch, "pixel_values": batch["pixel_values"][:, 0]})
    hook.remove()
    assert calls == []  # refused before the vision tower ran


def test_bad_emt_record_fields_are_refused_as_the_emt_loader_refuses_them(emoverse_processor, tmp_path):
    from m2se.data.emt import validate_emt_record

    image = solid_image_path(tmp_path, "a.png", (1, 2, 3))
    for field, value in [("videos", 5), ("images", ["ok.png", ""]), ("images", {"path": image})]:
        record = {"query": "q", "response": "r", field: value}
        with pytest.raises(ValueError) as from_loader:
            validate_emt_record(record, "EMT record 0")
        with pytest.raises(ValueError) as from_processor:
            emoverse_processor.process_emt_records([record])
        assert str(from_processor.value) == str(from_loader.value)
        assert f"EMT record 0: '{field}' must be a path or a list of paths" in str(from_processor.value)
    # a single path given as a string is one path (as the loader reads it), never a list of characters
    single = emoverse_processor.process_emt_records([{"query": "q", "response": "r", "images": image}])
    assert single["pixel_values"].shape[0] == 1
    with pytest.raises(FileNotFoundError, match=r"video file not found: a\.mp4$"):
        emoverse_processor.process_emt_records([{"query": "q", "response": "r", "videos": "a.mp4"}])
    with pytest.raises(ValueError, match=r"EMT record 1: 'query' must be a string, got int 5"):
        emoverse_processor.process_emt_records(
            [{"query": "q", "response": "r"}, {"query": 5, "response": "r"}]
        )
    with pytest.raises(ValueError, match=r"EMT record 0: 'response' must be a string, got NoneType None"):
        emoverse_processor.process_emt_records([{"query": "q", "response": None}])
    with pytest.raises(ValueError, match=r"process_emt_records got no EMT record; expected at least one"):
        emoverse_processor.process_emt_records([])
    with pytest.raises(TypeError, match=r"EMT record 0: expected a dict, got str 'q'"):
        emoverse_processor.process_emt_records(["q"])
    with pytest.raises(TypeError, match=r"expects a list of EMT records, got a single dict"):
        emoverse_processor.process_emt_records({"query": "q", "response": "r"})
    generated = emoverse_processor.process_emt_records({"query": "q", "response": "r"} for _ in range(2))
    assert generated["input_ids"].shape[0] == 2  # any iterable of records, read once
