"""`pipeline()` for EmoVerse: an image or a video with an EMT task (its query from the templates) or a free
query; the closed tasks answer inside their label set; the saved folder names the pipeline, so a fresh process
in another directory runs `pipeline(model=folder, trust_remote_code=True)` offline."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import run_in_fresh_process
from test_emoverse_common import randomize_trained_parts, solid_image_path
from test_emoverse_video import write_clip
from transformers import pipeline

from pipeline_emoverse import PIPELINE_TASK, EmoVersePipeline, build_query
from processing_emoverse import CLOSED_TASK_ANSWERS
from templates_emoverse import ERI_QUERY, FER_QUERY, ecpe_line, ecpe_query, er_query, msa_query

pytest_plugins = ["test_emoverse_common"]  # the shared EmoVerse fixtures


@pytest.fixture
def analyzer(emoverse_model, emoverse_processor) -> EmoVersePipeline:
    randomize_trained_parts(emoverse_model)
    return pipeline(PIPELINE_TASK, model=emoverse_model.eval(), processor=emoverse_processor)


@pytest.fixture
def media(tmp_path) -> dict[str, str]:
    return {
        "red": solid_image_path(tmp_path, "red.png", (200, 10, 10)),
        "green": solid_image_path(tmp_path, "green.png", (10, 200, 10)),
        "clip": write_clip(tmp_path / "clip.mp4"),
    }


def generate_free_text(model, processor, record: dict, max_new_tokens: int) -> str:
    batch = processor.process_emt_records([record], training=False)
    tokens = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.tokenizer.decode(
        tokens[0, batch["input_ids"].shape[1] :], skip_special_tokens=True
    ).strip()


def test_queries_are_the_emt_templates():
    conversation = [
        {"speaker": "A", "emotion": "joy", "text": "We won!"},
        {"speaker": "B", "emotion": "surprise", "text": "Really?"},
    ]
    lines = [ecpe_line(1, "joy", "A", "We won!"), ecpe_line(2, "surprise", "B", "Really?")]
    assert build_query("msa", "I liked it") == msa_query("I liked it")
    assert build_query("er", "I liked it") == er_query("I liked it")
    assert build_query("fer") == FER_QUERY
    assert build_query("eri") == ERI_QUERY
    assert build_query("ecpe", conversation=conversation) == ecpe_query(lines, 1)
    assert build_query("ecpe", conversation=conversation, target_index=0) == ecpe_query(lines, 0)


@pytest.mark.parametrize("task", ["msa", "er"])
def test_closed_tasks_answer_inside_their_label_set(analyzer, media, task):
    results = analyzer(
        [media["red"], media["clip"], media["green"]], task=task, text=["one", "two", "three"], batch_size=2
    )
    assert [result["task"] for result in results] == [task] * 3
    assert all(result["generated_text"] in CLOSED_TASK_ANSWERS[task] for result in results)
    single = analyzer(media["clip"], task=task, text="two")
    assert single == results[1]


def test_free_query_and_free_tasks_match_generate(analyzer, media, emoverse_model, emoverse_processor):
    record = {"query": "What is shown?", "images": [media["red"]]}
    expected = generate_free_text(emoverse_model, emoverse_processor, record, max_new_tokens=6)
    assert analyzer(media["red"], query="What is shown?", max_new_tokens=6) == {
        "task": None,
        "generated_text": expected,
    }
    eri = analyzer(media["clip"], task="eri", max_new_tokens=6)
    expected_eri = generate_free_text(
        emoverse_model, emoverse_processor, {"query": ERI_QUERY, "videos": [media["clip"]]}, max_new_tokens=6
    )
    assert eri == {"task": "eri", "generated_text": expected_eri}


def refuse_compute(model, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the model ran before the bad input was refused")

    monkeypatch.setattr(model, "generate", fail)


@pytest.mark.parametrize(
    ("inputs", "kwargs", "error", "message"),
    [
        (
            ["red", "missing.png"],
            {"task": "fer"},
            FileNotFoundError,
            r"missing\.png: image or video file not found",
        ),
        (["red", "broken.png"], {"task": "fer"}, ValueError, r"broken\.png"),
        (
            ["red", "broken.mp4"],
            {"task": "eri"},
            ValueError,
            r"broken\.mp4: not a readable image or video file",
        ),
        (
            ["clip"],
            {"task": "eri", "max_video_seconds": 0.5},
            ValueError,
            r"clip\.mp4: the video lasts 1\.0 s, longer than max_video_seconds=0\.5",
        ),
        (
            ["red"],
            {"task": "sentiment"},
            ValueError,
            r"task must be one of \['msa', 'er', 'fer', 'eri', 'ecpe'\]",
        ),
        (["red"], {}, ValueError, r"give exactly one of task= .* or query="),
        (["red"], {"task": "fer", "query": "Hi?"}, ValueError, r"give exactly one of task="),
        (["red"], {"task": "msa"}, ValueError, r"task 'msa' asks about an utterance: pass text="),
        (["red"], {"task": "fer", "text": ["hi"]}, ValueError, r"task 'fer' takes no text="),
        (["red"], {"task": "ecpe"}, ValueError, r"task 'ecpe' needs conversation="),
        (
            ["red", "green"],
            {"task": "msa", "text": ["a"]},
            ValueError,
            r"text holds 1 utterances for 2 inputs",
        ),
        (
            ["red"],
            {"task": "fer", "max_new_tokens": 0},
            ValueError,
            r"max_new_tokens must be a positive integer",
        ),
    ],
)
def test_bad_inputs_are_refused_before_the_model_runs(
    analyzer, media, tmp_path, monkeypatch, inputs, kwargs, error, message
):
    (tmp_path / "broken.png").write_text("not an image")
    (tmp_path / "broken.mp4").write_text("not a video")
    refuse_compute(analyzer.model, monkeypatch)
    paths = [media.get(name, str(tmp_path / name)) for name in inputs]
    with pytest.raises(error, match=message):
        analyzer(paths, **kwargs)


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    from transformers import pipeline

    folder, image = sys.argv[1], sys.argv[2]
    analyzer = pipeline(model=folder, trust_remote_code=True)
    print(json.dumps({
        "class": type(analyzer).__module__,
        "task": analyzer.task,
        "free": analyzer(image, query="What is shown?", max_new_tokens=6),
        "msa": analyzer(image, task="msa", text="I liked it"),
    }))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("save_full_model", [False, True])
def test_saved_folder_runs_as_a_pipeline_in_a_fresh_process(analyzer, media, tmp_path, save_full_model):
    folder, elsewhere = tmp_path / "checkpoint", tmp_path / "elsewhere"
    elsewhere.mkdir()
    analyzer.model.save_pretrained(folder, save_full_model=save_full_model)
    analyzer.processor.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"] == {
        PIPELINE_TASK: {
            "impl": "pipeline_emoverse.EmoVersePipeline",
            "pt": ["AutoModelForImageTextToText"],
            "type": "multimodal",
        }
    }
    assert {"pipeline_emoverse.py", "templates_emoverse.py"} <= {path.name for path in folder.iterdir()}
    expected = {
        "free": analyzer(media["red"], query="What is shown?", max_new_tokens=6),
        "msa": analyzer(media["red"], task="msa", text="I liked it"),
    }
    stdout = run_in_fresh_process(["-c", FRESH_PROCESS, str(folder), media["red"]], elsewhere)
    loaded = json.loads(stdout.strip().splitlines()[-1])
    assert loaded["class"].startswith("transformers_modules.")  # the folder's code, not this checkout
    assert loaded["task"] == PIPELINE_TASK
    assert {"free": loaded["free"], "msa": loaded["msa"]} == expected
