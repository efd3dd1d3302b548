"""m2se.reporting: model card round trip, PNG plots, seed summaries, and their input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load
from PIL import Image

from m2se.reporting import plot_confusion_matrix, plot_training_curves, summarize_seeds, write_model_card

CARD_ARGUMENTS = {
    "model_name": "mse-adapter-smollm2-mosei",
    "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "datasets": ["CMU-MOSEI"],
    "recipe_name": "mse_adapter_mosei",
    "task": "text-generation",
    "task_name": "Multimodal sentiment analysis",
}


def test_model_card_round_trip(tmp_path):
    trainer_metrics = {
        "eval_MAE": 0.513,
        "eval_Corr": 0.791,
        "eval_runtime": 3.2,
        "eval_samples_per_second": 9.0,
    }
    trainer_metrics["epoch"] = 4.0
    readme = write_model_card(
        tmp_path,
        **CARD_ARGUMENTS,
        metrics={
            "CMU-MOSEI": trainer_metrics,
            "MELD": {"acc": 0.66, "weighted_f1": 0.65, "Corr": float("nan")},
        },
        tags=["multimodal"],
        model_id="me/mse-adapter",
    )
    assert readme == tmp_path / "README.md"
    card = ModelCard.load(readme)
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.datasets == ["CMU-MOSEI"]
    assert card.data.library_name == "transformers" and card.data.license == "apache-2.0"
    assert {"m2se", "multimodal", "recipe:mse_adapter_mosei"} <= set(card.data.tags)
    results = {(r.dataset_name, r.metric_type): r for r in card.data.eval_results}
    # Trainer prefixes are removed, its bookkeeping dropped, and the undefined Corr left out of model-index.
    assert {key: r.metric_value for key, r in results.items()} == {
        ("CMU-MOSEI", "MAE"): 0.513,
        ("CMU-MOSEI", "Corr"): 0.791,
        ("MELD", "acc"): 0.66,
        ("MELD", "weighted_f1"): 0.65,
    }
    mae = results[("CMU-MOSEI", "MAE")]
    assert (mae.task_type, mae.task_name, mae.dataset_type, mae.dataset_split) == (
        "text-generation", "Multimodal sentiment analysis", "CMU-MOSEI", "test"
    )  # fmt: skip
    model_index = metadata_load(readme)["model-index"]
    assert model_index[0]["name"] == "mse-adapter-smollm2-mosei"
    assert len(model_index[0]["results"]) == 2  # one per evaluation data set
    text = readme.read_text()
    assert "| Corr | nan |" in text and "| MAE | 0.5130 |" in text
    assert 'AutoModel.from_pretrained("me/mse-adapter", trust_remote_code=True)' in text
    assert "--recipe mse_adapter_mosei" in text


def test_model_card_optional_sections(tmp_path):
    readme = write_model_card(
        tmp_path,
        **CARD_ARGUMENTS,
        metrics={"synthetic": {"MAE": 0.3}},
        usage="Call `model.predict(**batch)`.",
        description="A demo adapter.",
        training_summary="| stage | samples |\n|---|---|\n| stage1 | 100 |",
    )
    text = readme.read_text()
    assert (
        "A demo adapter." in text and "Call `model.predict(**batch)`." in text and "| stage1 | 100 |" in text
    )
    assert "trust_remote_code" not in text


def test_model_card_without_held_out_metrics_says_so_and_has_no_model_index(tmp_path):
    readme = write_model_card(tmp_path, **CARD_ARGUMENTS, metrics=None)
    text = readme.read_text()
    assert "No held-out metrics: the run held out no rows to score the model on." in text
    assert "model-index" not in metadata_load(readme)
    with pytest.raises(
        ValueError, match=r"metrics must map each evaluation data set to its metrics \(or be None\)"
    ):
        write_model_card(tmp_path, **CARD_ARGUMENTS, metrics={})


def test_model_card_input_checks(tmp_path):
    with pytest.raises(FileNotFoundError, match="existing folder"):
        write_model_card(tmp_path / "missing", **CARD_ARGUMENTS, metrics={"x": {"MAE": 0.1}})
    with pytest.raises(TypeError, match=r"metrics\['MAE'\] must be a dict .* got float 0.1"):
        write_model_card(tmp_path, **CARD_ARGUMENTS, metrics={"MAE": 0.1})
    with pytest.raises(TypeError, match=r"metrics\['x'\]\['MAE'\] must be a number; got str"):
        write_model_card(tmp_path, **CARD_ARGUMENTS, metrics={"x": {"MAE": "0.1"}})
    with pytest.raises(ValueError, match="holds no metric"):
        write_model_card(tmp_path, **CARD_ARGUMENTS, metrics={"x": {"eval_runtime": 1.0}})
    with pytest.raises(ValueError, match="datasets must be a non-empty list"):
        write_model_card(tmp_path, **{**CARD_ARGUMENTS, "datasets": "CMU-MOSEI"}, metrics={"x": {"MAE": 0.1}})
    assert not (tmp_path / "README.md").exists()


def _log_history(num_steps: int = 40) -> list[dict]:
    history = [
        {"step": step, "loss": 2.0 / step, "loss_msa": 1.5 / step, "loss_er": 1.0 / step,
         "learning_rate": 1e-3 * (1 - step / num_steps), "epoch": step / 10}
        for step in range(1, num_steps + 1)
    ]  # fmt: skip
    return [*history, {"step": 20, "eval_loss": 0.4}, {"train_runtime": 5.0}]


def test_training_curves_png(tmp_path):
    path = plot_training_curves(
        _log_history(), [("stage1", 0), ("stage2", 20)], tmp_path / "training_curves.png"
    )
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1000, 700)
    small = plot_training_curves(_log_history(), [], tmp_path / "small.png", figsize=(6, 4), dpi=50)
    with Image.open(small) as image:
        assert image.size == (300, 200)


def test_training_curves_draw_the_stage_boundaries(tmp_path):
    with_stages = plot_training_curves(_log_history(), [("stage2", 20)], tmp_path / "a.png")
    without = plot_training_curves(_log_history(), [], tmp_path / "b.png")
    with Image.open(with_stages) as a, Image.open(without) as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_training_curves_input_checks(tmp_path):
    with pytest.raises(ValueError, match=r"no 'loss'.*got keys \['learning_rate', 'step'\]"):
        plot_training_curves([{"step": 1, "learning_rate": 0.1}], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="increasing non-negative int steps"):
        plot_training_curves(_log_history(), [("stage1", 20), ("stage2", 10)], tmp_path / "x.png")
    with pytest.raises(ValueError, match="increasing non-negative int steps"):
        plot_training_curves(_log_history(), [("stage1", -1)], tmp_path / "x.png")
    with pytest.raises(TypeError, match="list of dicts"):
        plot_training_curves([1.0, 2.0], [], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_confusion_matrix_png_and_counts(tmp_path):
    labels = ["neutral", "joy", "anger"]
    counts = plot_confusion_matrix(
        ["joy", None, "anger", "joy", "neutral"], ["joy", "anger", "anger", "neutral", "neutral"], labels,
        tmp_path / "confusion_matrix.png",
    )  # fmt: skip
    # rows: reference neutral / joy / anger; columns: predicted neutral / joy / anger / unparsable
    np.testing.assert_array_equal(counts, [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]])
    with Image.open(tmp_path / "confusion_matrix.png") as image:
        assert image.format == "PNG" and image.size == (700, 600)
    by_index = plot_confusion_matrix([1, 2, 1], [1, 1, 0], labels, tmp_path / "indices.png")
    np.testing.assert_array_equal(by_index, [[0, 1, 0], [0, 1, 1], [0, 0, 0]])


def test_confusion_matrix_input_checks(tmp_path):
    with pytest.raises(ValueError, match="'happy' is not a known label"):
        plot_confusion_matrix(["happy"], ["joy"], ["joy"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="1 predictions and 2 references"):
        plot_confusion_matrix(["joy"], ["joy", "joy"], ["joy"], tmp_path / "x.png")
    with pytest.raises(TypeError, match="predictions are int values but references are str"):
        plot_confusion_matrix([0], ["joy"], ["joy"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="label_names must be a non-empty list"):
        plot_confusion_matrix(["joy"], ["joy"], [], tmp_path / "x.png")


def test_summarize_seeds():
    results = {1111: {"acc": 0.5, "MAE": 0.6}, 2222: {"acc": 0.7, "MAE": 0.4}, 3333: {"acc": 0.9, "MAE": 0.5}}
    summary, table = summarize_seeds(results)
    # acc: mean 0.7; deviations -0.2, 0, 0.2 -> sample variance 0.08 / 2 = 0.04 -> std 0.2 (ddof=1).
    assert summary["acc"] == pytest.approx({"mean": 0.7, "std": 0.2})
    assert summary["MAE"] == pytest.approx({"mean": 0.5, "std": float(np.std([0.6, 0.4, 0.5], ddof=1))})
    assert table.splitlines() == [
        "| metric | seed 1111 | seed 2222 | seed 3333 | mean | std |",
        "|---|---|---|---|---|---|",
        "| acc | 0.5000 | 0.7000 | 0.9000 | 0.7000 | 0.2000 |",
        "| MAE | 0.6000 | 0.4000 | 0.5000 | 0.5000 | 0.1000 |",
    ]


def test_summarize_seeds_single_seed_and_nan():
    summary, table = summarize_seeds({1111: {"acc": 0.5}})
    assert summary["acc"]["mean"] == 0.5 and math.isnan(summary["acc"]["std"])
    assert table.splitlines()[-1] == "| acc | 0.5000 | 0.5000 | nan |"
    summary, _ = summarize_seeds({1: {"Corr": float("nan")}, 2: {"Corr": 0.5}})
    assert math.isnan(summary["Corr"]["mean"]) and math.isnan(summary["Corr"]["std"])


def test_summarize_seeds_input_checks():
    with pytest.raises(ValueError, match="seed 1 has \\['acc'\\], seed 2 has \\['f1'\\]"):
        summarize_seeds({1: {"acc": 0.5}, 2: {"f1": 0.5}})
    with pytest.raises(ValueError, match="must map each seed"):
        summarize_seeds({})
    with pytest.raises(TypeError, match="seeds must be ints; got \\['1111'\\]"):
        summarize_seeds({"1111": {"acc": 0.5}})
    with pytest.raises(TypeError, match=r"'acc' must be numbers for every seed; got \[0\.5, None\]"):
        summarize_seeds({1: {"acc": 0.5}, 2: {"acc": None}})
