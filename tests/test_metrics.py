"""m2se.metrics: worked examples, cross-checks against sklearn/scipy/numpy, input checks, evaluate modules."""

from __future__ import annotations

import math

import evaluate
import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support, recall_score
from sklearn.preprocessing import MultiLabelBinarizer

from m2se.metrics import (
    ECPE_EMOTIONS,
    EVALUATE_MODULES,
    binary_sentiment_metrics,
    ecpe_metrics,
    erc_metrics,
    evaluate_module_path,
    msa_regression_metrics,
    parse_ecpe_answer,
    parse_emotion_answer,
    parse_sentiment_answer,
    sims_regression_metrics,
)

MELD_LABELS = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]


# ---------------------------------------------------------------- MOSI / MOSEI regression


def test_msa_regression_hand_computed():
    predictions = [2.4, -0.6, 0.2, 1.5, -0.1]
    references = [3.0, -1.0, 0.0, 2.5, 0.4]
    metrics = msa_regression_metrics(predictions, references)
    # Has0: truth >= 0 -> T F T T T, pred >= 0 -> T F T T F: 4/5 right.
    assert metrics["Has0_acc_2"] == pytest.approx(0.8)
    # Class T (support 4): P 3/3, R 3/4, F1 6/7. Class F (support 1): P 1/2, R 1, F1 2/3.
    # Weighted: (4 * 6/7 + 1 * 2/3) / 5 = 86/105.
    assert metrics["Has0_F1_score"] == pytest.approx(86 / 105)
    # Non0 drops the truth 0.0: truth > 0 -> T F T T, pred > 0 -> T F T F: 3/4 right.
    assert metrics["Non0_acc_2"] == pytest.approx(0.75)
    # Class T (support 3): P 1, R 2/3, F1 0.8. Class F (support 1): P 1/2, R 1, F1 2/3.
    # Weighted: (3 * 0.8 + 2/3) / 4 = 23/30.
    assert metrics["Non0_F1_score"] == pytest.approx(23 / 30)
    # [-3, 3]: preds round to 2 -1 0 2 -0 (1.5 -> 2), truths to 3 -1 0 2 0 (2.5 -> 2, halves to even): 4/5.
    assert metrics["Mult_acc_7"] == pytest.approx(0.8)
    # [-2, 2]: preds 2 -1 0 2 -0, truths (3 -> 2) 2 -1 0 2 0: all equal.
    assert metrics["Mult_acc_5"] == pytest.approx(1.0)
    # |errors| 0.6 0.4 0.2 1.0 0.5 on the unclipped values: 2.7 / 5.
    assert metrics["MAE"] == pytest.approx(0.54)
    assert metrics["Corr"] == pytest.approx(pearsonr(predictions, references)[0])
    expected_keys = ["Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score", "Mult_acc_5", "Mult_acc_7"]
    assert list(metrics) == [*expected_keys, "MAE", "Corr"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_msa_regression_matches_sklearn_scipy(seed):
    rng = np.random.default_rng(seed)
    references = np.round(rng.uniform(-3, 3, 200) * 3) / 3  # MOSEI labels are averages of 3 ratings
    references[rng.choice(200, 30, replace=False)] = 0.0
    predictions = np.round(rng.normal(references, 1.0), 1)  # one decimal, like the MSE-Adapter answers
    metrics = msa_regression_metrics(predictions.tolist(), references.tolist())
    non_zero = references != 0
    expected = {
        "Has0_acc_2": accuracy_score(references >= 0, predictions >= 0),
        "Has0_F1_score": f1_score(references >= 0, predictions >= 0, average="weighted"),
        "Non0_acc_2": accuracy_score(references[non_zero] > 0, predictions[non_zero] > 0),
        "Non0_F1_score": f1_score(references[non_zero] > 0, predictions[non_zero] > 0, average="weighted"),
        "Mult_acc_5": np.mean(np.round(np.clip(predictions, -2, 2)) == np.round(np.clip(references, -2, 2))),
        "Mult_acc_7": np.mean(np.round(np.clip(predictions, -3, 3)) == np.round(np.clip(references, -3, 3))),
        "MAE": np.mean(np.abs(predictions - references)),
        "Corr": pearsonr(predictions, references)[0],
    }
    assert metrics == pytest.approx(expected)


def test_msa_regression_undefined_values_are_nan():
    # A constant predictor (an untrained model answering +0.0) has no correlation; all-zero truths no Non0.
    constant = msa_regression_metrics([0.0, 0.0, 0.0], [1.0, -1.0, 0.5])
    assert math.isnan(constant["Corr"]) and constant["Has0_acc_2"] == pytest.approx(2 / 3)
    all_zero = msa_regression_metrics([0.5, -0.5], [0.0, 0.0])
    assert math.isnan(all_zero["Non0_acc_2"]) and math.isnan(all_zero["Non0_F1_score"])
    assert all_zero["Has0_acc_2"] == pytest.approx(0.5)


# ---------------------------------------------------------------- SIMS regression


def test_sims_regression_hand_computed():
    predictions = [-0.9, 0.05, 0.1, 0.75, 1.4]
    references = [-0.8, -0.05, 0.3, 0.6, 1.0]
    metrics = sims_regression_metrics(predictions, references)
    # Clipped preds -0.9 0.05 0.1 0.75 1.0. Two classes (<= 0, > 0): preds 0 1 1 1 1, truths 0 0 1 1 1.
    assert metrics["Mult_acc_2"] == pytest.approx(0.8)
    # Weak: truths in [-0.4, 0.4] are -0.05 and 0.3: preds 1 1, truths 0 1.
    assert metrics["Mult_acc_2_weak"] == pytest.approx(0.5)
    # Three classes, edges -0.1 and 0.1, right-closed: preds 0 1 1 2 2 (0.1 stays in the middle),
    # truths 0 1 2 2 2.
    assert metrics["Mult_acc_3"] == pytest.approx(0.8)
    # Five classes with edges -0.7 -0.1 0.1 0.7: preds 0 2 2 4 4, truths 0 2 3 3 4.
    assert metrics["Mult_acc_5"] == pytest.approx(0.6)
    # Two-class weighted F1: class 0 (support 2) P 1 R 1/2 F1 2/3; class 1 (support 3) P 3/4 R 1 F1 6/7.
    # Weighted: (2 * 2/3 + 3 * 6/7) / 5 = 82/105.
    assert metrics["F1_score"] == pytest.approx(82 / 105)
    # Clipped |errors| 0.1 0.1 0.2 0.15 0.0 -> 0.55 / 5.
    assert metrics["MAE"] == pytest.approx(0.11)
    assert metrics["Corr"] == pytest.approx(pearsonr([-0.9, 0.05, 0.1, 0.75, 1.0], references)[0])


def test_sims_bins_follow_the_definition_for_float32_labels():
    # float32 0.1 is 0.10000000149, -0.7 is -0.69999999, -0.4 is -0.40000001 and 0.4 is 0.40000001: compared
    # naively, 0.1 would leave (-0.1, 0.1], -0.7 would leave [-1, -0.7] and -0.4 / 0.4 the weak range.
    references = np.array([0.1, -0.7, -0.4, 0.4], dtype=np.float32)
    predictions = np.array([0.05, -0.8, 0.2, 0.3], dtype=np.float32)
    metrics = sims_regression_metrics(predictions, references)
    # Three classes: truths 1 0 0 2, preds 1 0 2 2 (naively truths 2 0 0 2: 2/4).
    assert metrics["Mult_acc_3"] == pytest.approx(3 / 4)
    # Five classes: truths 2 0 1 3, preds 2 0 3 3 (naively truths 3 1 1 3: 1/4).
    assert metrics["Mult_acc_5"] == pytest.approx(3 / 4)
    # Weak samples: truths 0.1, -0.4, 0.4; the prediction 0.2 for -0.4 is wrong (naively only 0.1: 1/1).
    assert metrics["Mult_acc_2_weak"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_sims_regression_matches_numpy_sklearn(seed):
    rng = np.random.default_rng(seed)
    references = rng.uniform(-1.2, 1.2, 300)
    predictions = rng.normal(references, 0.4)
    metrics = sims_regression_metrics(predictions, references)
    p, r = np.clip(predictions, -1, 1), np.clip(references, -1, 1)

    def bins(values, edges):  # explicit interval tests, independent of np.digitize
        return sum((values > edge).astype(int) for edge in edges)

    weak = (r >= -0.4) & (r <= 0.4)
    expected = {
        "Mult_acc_2": np.mean(bins(p, [0]) == bins(r, [0])),
        "Mult_acc_2_weak": np.mean(bins(p[weak], [0]) == bins(r[weak], [0])),
        "Mult_acc_3": np.mean(bins(p, [-0.1, 0.1]) == bins(r, [-0.1, 0.1])),
        "Mult_acc_5": np.mean(bins(p, [-0.7, -0.1, 0.1, 0.7]) == bins(r, [-0.7, -0.1, 0.1, 0.7])),
        "F1_score": f1_score(bins(r, [0]), bins(p, [0]), average="weighted"),
        "MAE": np.mean(np.abs(p - r)),
        "Corr": pearsonr(p, r)[0],
    }
    assert metrics == pytest.approx(expected)


# ---------------------------------------------------------------- ERC and binary sentiment


def test_erc_hand_computed_with_unparsable():
    predictions = ["joy", None, "anger", "joy"]
    references = ["joy", "joy", "anger", "neutral"]
    metrics = erc_metrics(predictions, references, label_names=["neutral", "joy", "anger"])
    # Right: samples 0 and 2. joy (support 2): P 1/2, R 1/2, F1 1/2; anger (1): F1 1; neutral (1): F1 0.
    # Weighted: (2 * 0.5 + 1 * 1 + 1 * 0) / 4 = 0.5. The unparsable answer is wrong, not a default class.
    assert metrics == pytest.approx(
        {"acc": 0.5, "weighted_f1": 0.5, "unparsable": 1.0, "unparsable_rate": 0.25}
    )


@pytest.mark.parametrize("as_indices", [False, True])
def test_erc_matches_sklearn(as_indices):
    rng = np.random.default_rng(3)
    references = rng.integers(0, 7, 400)
    predictions = np.where(rng.random(400) < 0.6, references, rng.integers(0, 7, 400))
    if as_indices:
        refs, preds = references.tolist(), predictions.tolist()
    else:
        refs, preds = [MELD_LABELS[i] for i in references], [MELD_LABELS[i] for i in predictions]
    metrics = erc_metrics(preds, refs, label_names=MELD_LABELS)
    assert metrics["acc"] == pytest.approx(accuracy_score(refs, preds))
    assert metrics["weighted_f1"] == pytest.approx(f1_score(refs, preds, average="weighted"))
    assert erc_metrics(preds, refs) == metrics  # the classes that occur are the same here


def test_erc_unparsable_matches_sklearn_with_a_class_that_no_reference_uses():
    rng = np.random.default_rng(4)
    refs = [MELD_LABELS[i] for i in rng.integers(0, 7, 300)]
    preds = [None if rng.random() < 0.2 else MELD_LABELS[i] for i in rng.integers(0, 7, 300)]
    metrics = erc_metrics(preds, refs, label_names=MELD_LABELS)
    marked = ["<unparsable>" if p is None else p for p in preds]
    assert metrics["acc"] == pytest.approx(accuracy_score(refs, marked))
    assert metrics["weighted_f1"] == pytest.approx(
        f1_score(refs, marked, labels=MELD_LABELS, average="weighted")
    )
    assert metrics["unparsable"] == preds.count(None)


def test_binary_sentiment_hand_computed_and_against_sklearn():
    predictions = ["Positive", "Negative", None, "Positive", "Positive"]
    references = ["Positive", "Negative", "Negative", "Negative", "Positive"]
    metrics = binary_sentiment_metrics(predictions, references)
    # Right: 0, 1, 4 -> 3/5. Positive recall 2/2; Negative recall 1/3 (the unparsable one counts as missed).
    assert metrics == pytest.approx(
        {
            "accuracy": 0.6,
            "recall_positive": 1.0,
            "recall_negative": 1 / 3,
            "unparsable": 1.0,
            "unparsable_rate": 0.2,
        }
    )
    marked = ["?" if p is None else p for p in predictions]
    assert metrics["recall_negative"] == pytest.approx(
        recall_score(references, marked, labels=["Negative"], average="micro")
    )
    only_positive = binary_sentiment_metrics(["Negative"], ["Positive"])
    assert only_positive["recall_positive"] == 0.0 and math.isnan(only_positive["recall_negative"])


def test_accuracy_counters_start_at_zero():
    # The released M2SE scorer starts a counter at 083.87: all-wrong answers must give exactly 0, all-right 1.
    assert binary_sentiment_metrics(["Negative", None], ["Positive", "Positive"])["accuracy"] == 0.0
    assert binary_sentiment_metrics(["Positive"] * 3, ["Positive"] * 3)["accuracy"] == 1.0
    assert erc_metrics(["joy", "anger"], ["anger", "joy"])["acc"] == 0.0
    assert erc_metrics(["joy", "anger"], ["anger", "joy"])["weighted_f1"] == 0.0


# ---------------------------------------------------------------- parsers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Positive.", "Positive"),
        ("negative", "Negative"),
        ('  "Positive." The speaker smiles.', "Positive"),
        ("POSITIVE!", "Positive"),
        ("Positively.", None),
        ("The sentiment is positive.", None),
        ("Neutral.", None),
        ("", None),
    ],
)
def test_parse_sentiment_answer(text, expected):
    assert parse_sentiment_answer(text) == expected


def test_parse_emotion_answer_meld_says_joy_not_happy():
    # MELD answers say "Joy."; the released scorer looked for "Happy." and so never matched them.
    assert parse_emotion_answer("Joy.", MELD_LABELS) == "joy"
    assert parse_emotion_answer("Neutral.", MELD_LABELS) == "neutral"
    assert parse_emotion_answer("Happy.", MELD_LABELS) is None  # not silently mapped
    assert parse_emotion_answer("Joyful.", MELD_LABELS) is None
    assert parse_emotion_answer("Happy.", MELD_LABELS, aliases={"happy": "joy"}) == "joy"
    assert parse_emotion_answer("Sadness. Tears.", MELD_LABELS) == "sadness"
    answers = ["Joy.", "Joy.", "Anger."]
    parsed = [parse_emotion_answer(a, MELD_LABELS) for a in answers]
    assert erc_metrics(parsed, ["joy", "joy", "anger"], MELD_LABELS)["acc"] == 1.0


def test_parse_emotion_answer_prefers_the_longest_label():
    assert parse_emotion_answer("very happy", ["very", "very happy"]) == "very happy"
    assert parse_emotion_answer("very.", ["very", "very happy"]) == "very"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5_surprise,2;5_surprise,5", [(5, "surprise", 2), (5, "surprise", 5)]),
        (" 3_Joy , 1 ; 3_joy,3 ", [(3, "joy", 1), (3, "joy", 3)]),
        ("", []),
        ("  ", []),
        ("5_neutral,2", None),
        ("5_surprise,2;", None),
        ("5_surprise 2", None),
        ("The answer is 5_surprise,2", None),
    ],
)
def test_parse_ecpe_answer(text, expected):
    assert parse_ecpe_answer(text) == expected


# ---------------------------------------------------------------- ECPE


def test_ecpe_hand_computed():
    predictions = ["5_surprise,2;5_joy,5", "4_anger,1", "garbled", "2_sadness,1;2_sadness,1"]
    references = ["5_surprise,2;5_surprise,5", "", "3_anger,1", "2_sadness,1"]
    metrics = ecpe_metrics(predictions, references)
    # Record 1 has an empty reference: skipped, so its prediction is no false positive.
    # Record 0: (5,surprise,2) TP; (5,joy,5) FP of joy; (5,surprise,5) FN of surprise.
    # Record 2: unparsable -> no prediction; (3,anger,1) FN. Record 3: the repeated pair counts once: TP.
    # Totals TP 2, FP 1, FN 2: P 2/3, R 1/2, F1 4/7.
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(0.5)
    assert metrics["f1"] == pytest.approx(4 / 7)
    # Per emotion: surprise P 1 R 1/2 F1 2/3 (2 gold), anger F1 0 (1 gold), sadness F1 1 (1 gold), joy: only a
    # false positive, P 0 and F1 0 (0 gold). Weighted: (2 * 2/3 + 1 * 0 + 1 * 1) / 4 = 7/12.
    assert metrics["weighted_f1"] == pytest.approx(7 / 12)
    assert metrics["f1_surprise"] == pytest.approx(2 / 3)
    assert metrics["f1_joy"] == 0.0 and metrics["f1_anger"] == 0.0 and metrics["f1_sadness"] == 1.0
    assert metrics["unparsable"] == 1.0 and metrics["unparsable_rate"] == pytest.approx(1 / 3)
    assert metrics["skipped_empty_references"] == 1.0


def test_ecpe_no_predictions_gives_zero_not_an_error():
    metrics = ecpe_metrics(["", None], ["3_anger,1", "2_fear,2"])
    assert metrics["precision"] == 0.0 and metrics["f1"] == 0.0 and metrics["weighted_f1"] == 0.0
    assert metrics["unparsable"] == 1.0


def test_ecpe_wrong_emotion_is_a_false_positive_and_a_false_negative():
    metrics = ecpe_metrics(["3_joy,1"], ["3_anger,1"])
    assert metrics["precision"] == 0.0 and metrics["recall"] == 0.0 and metrics["f1_joy"] == 0.0


def test_ecpe_matches_sklearn_multilabel():
    rng = np.random.default_rng(5)
    references, predictions = [], []
    for _ in range(150):
        target = int(rng.integers(1, 12))
        gold = {(target, ECPE_EMOTIONS[rng.integers(0, 6)], int(c)) for c in rng.integers(1, target + 1, 2)}
        guess = {
            (
                t,
                e if rng.random() < 0.8 else ECPE_EMOTIONS[rng.integers(0, 6)],
                c if rng.random() < 0.7 else c + 1,
            )
            for t, e, c in gold
            if rng.random() < 0.9
        }
        references.append(";".join(f"{t}_{e},{c}" for t, e, c in sorted(gold)))
        predictions.append(";".join(f"{t}_{e},{c}" for t, e, c in sorted(guess)))
    metrics = ecpe_metrics(predictions, references)

    def micro(emotions):
        gold = [
            {(i, *pair) for pair in parse_ecpe_answer(r) if pair[1] in emotions}
            for i, r in enumerate(references)
        ]
        pred = [
            {(i, *pair) for pair in parse_ecpe_answer(p) if pair[1] in emotions}
            for i, p in enumerate(predictions)
        ]
        binarizer = MultiLabelBinarizer().fit(gold + pred)
        scores = precision_recall_fscore_support(
            binarizer.transform(gold), binarizer.transform(pred), average="micro", zero_division=0
        )
        return scores[:3], sum(len(g) for g in gold)

    (precision, recall, f1), _ = micro(ECPE_EMOTIONS)
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == pytest.approx((precision, recall, f1))
    per_emotion = {emotion: micro({emotion}) for emotion in ECPE_EMOTIONS}
    weighted = sum(scores[2] * support for scores, support in per_emotion.values()) / sum(
        support for _, support in per_emotion.values()
    )
    assert metrics["weighted_f1"] == pytest.approx(weighted)
    for emotion, (scores, _) in per_emotion.items():
        assert metrics[f"f1_{emotion}"] == pytest.approx(scores[2])


# ---------------------------------------------------------------- input checks


@pytest.mark.parametrize("function", [msa_regression_metrics, sims_regression_metrics])
def test_regression_input_checks(function):
    with pytest.raises(ValueError, match="2 predictions and 3 references"):
        function([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="empty"):
        function([], [])
    with pytest.raises(ValueError, match=r"NaN/inf.*index 1"):
        function([0.1, float("nan")], [0.1, 0.2])
    with pytest.raises(ValueError, match="references must be finite"):
        function([0.1, 0.2], [float("inf"), 0.2])
    with pytest.raises(TypeError, match=r"real numbers.*'\+1\.2'"):
        function(["+1.2", 0.3], [0.1, 0.2])
    with pytest.raises(TypeError, match=r"real numbers.*None"):
        function([None, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="1-D"):
        function([[0.1], [0.2]], [[0.1], [0.2]])


def test_classification_input_checks():
    with pytest.raises(ValueError, match="'happy' is not a known label"):
        erc_metrics(["happy"], ["joy"], label_names=MELD_LABELS)
    with pytest.raises(ValueError, match=r"not a valid index; expected 0\.\.6"):
        erc_metrics([7], [1], label_names=MELD_LABELS)
    with pytest.raises(TypeError, match="predictions are int values but references are str"):
        erc_metrics([1], ["joy"])
    with pytest.raises(TypeError, match="mixes str labels and int indices"):
        erc_metrics(["joy", 1], ["joy", "joy"])
    with pytest.raises(ValueError, match=r"references\[0\] is None"):
        erc_metrics(["joy"], [None])
    with pytest.raises(TypeError, match=r"float 0\.5"):
        erc_metrics([0.5], [1])
    with pytest.raises(ValueError, match="distinct"):
        erc_metrics(["joy"], ["joy"], label_names=["joy", "joy"])
    with pytest.raises(ValueError, match="1 predictions and 2 references"):
        erc_metrics(["joy"], ["joy", "joy"])
    with pytest.raises(ValueError, match=r"'Positive\.' is not a known label"):
        binary_sentiment_metrics(["Positive."], ["Positive"])
    with pytest.raises(TypeError, match="must be a str label; got int 1"):
        binary_sentiment_metrics([1], ["Positive"])
    with pytest.raises(ValueError, match="empty"):
        binary_sentiment_metrics([], [])


def test_parser_and_ecpe_input_checks():
    with pytest.raises(TypeError, match="got NoneType"):
        parse_sentiment_answer(None)
    with pytest.raises(ValueError, match="non-empty"):
        parse_emotion_answer("Joy.", [])
    with pytest.raises(ValueError, match="'glad' maps to 'happiness'"):
        parse_emotion_answer("Joy.", MELD_LABELS, aliases={"glad": "happiness"})
    with pytest.raises(ValueError, match="already the label"):
        parse_emotion_answer("Joy.", MELD_LABELS, aliases={"fear": "joy"})
    with pytest.raises(ValueError, match=r"references\[0\] = '3_happy,1' is not a list of pairs"):
        ecpe_metrics(["3_joy,1"], ["3_happy,1"])
    with pytest.raises(ValueError, match="all 2 references are empty"):
        ecpe_metrics(["3_joy,1", ""], ["", ""])
    with pytest.raises(TypeError, match=r"predictions\[0\] must be a str or None; got int"):
        ecpe_metrics([3], ["3_joy,1"])
    with pytest.raises(ValueError, match="2 predictions and 1 references"):
        ecpe_metrics(["", ""], ["3_joy,1"])


# ---------------------------------------------------------------- evaluate modules


def test_every_evaluate_module_loads_offline_by_path():
    for name in EVALUATE_MODULES:
        module = evaluate.load(evaluate_module_path(name))
        assert module.name == name
    with pytest.raises(ValueError, match="unknown metric module 'accuracy'"):
        evaluate_module_path("accuracy")


def test_evaluate_modules_give_the_function_values():
    rng = np.random.default_rng(6)
    references = np.round(rng.uniform(-3, 3, 50), 1).tolist()
    predictions = np.round(rng.uniform(-3, 3, 50), 1).tolist()
    msa = evaluate.load(evaluate_module_path("msa_regression"))
    assert msa.compute(predictions=predictions, references=references) == pytest.approx(
        msa_regression_metrics(predictions, references)
    )
    sims = evaluate.load(evaluate_module_path("sims_regression"))
    small = [value / 3 for value in predictions]
    assert sims.compute(predictions=small, references=references) == pytest.approx(
        sims_regression_metrics(small, references)
    )

    erc = evaluate.load(evaluate_module_path("erc"))
    answers = ["Joy.", "Happy.", "anger", "Neutral. He shrugs."]
    gold = ["Joy.", "Joy.", "Anger.", "Sadness."]
    expected = erc_metrics(["joy", None, "anger", "neutral"], ["joy", "joy", "anger", "sadness"], MELD_LABELS)
    assert erc.compute(predictions=answers, references=gold, label_names=MELD_LABELS) == pytest.approx(
        expected
    )
    assert erc.compute(predictions=[4, 0, 6], references=[4, 4, 6]) == pytest.approx(
        erc_metrics([4, 0, 6], [4, 4, 6])
    )
    with pytest.raises(ValueError, match="need label_names"):
        erc.compute(predictions=answers, references=gold)

    sentiment = evaluate.load(evaluate_module_path("binary_sentiment"))
    assert sentiment.compute(
        predictions=["Positive.", "I think so", "Negative."],
        references=["Positive.", "Negative.", "Positive."],
    ) == pytest.approx(
        binary_sentiment_metrics(["Positive", None, "Negative"], ["Positive", "Negative", "Positive"])
    )
    with pytest.raises(ValueError, match="'Maybe' does not parse"):
        sentiment.compute(predictions=["Positive."], references=["Maybe"])

    ecpe = evaluate.load(evaluate_module_path("ecpe"))
    answers = ["5_surprise,2;5_joy,5", "4_anger,1", "garbled"]
    gold = ["5_surprise,2;5_surprise,5", "", "3_anger,1"]
    assert ecpe.compute(predictions=answers, references=gold) == pytest.approx(ecpe_metrics(answers, gold))


def test_evaluate_modules_refuse_what_the_functions_refuse():
    msa = evaluate.load(evaluate_module_path("msa_regression"))
    message = r"^predictions must contain real numbers only; got str '1\.5' at index 0 \(dtype <U3\)$"
    with pytest.raises(TypeError, match=message):
        msa_regression_metrics(["1.5", "2"], [1.0, 2.0])
    with pytest.raises(TypeError, match=message):
        msa.compute(predictions=["1.5", "2"], references=[1.0, 2.0])
    with pytest.raises(
        TypeError, match=r"^references must contain real numbers only; got bool True at index 1"
    ):
        msa.add_batch(predictions=[0.5, 1.0], references=[0.5, True])
    with pytest.raises(ValueError, match="NaN/inf"):
        evaluate.load(evaluate_module_path("sims_regression")).add(prediction=float("nan"), reference=0.1)
    erc = evaluate.load(evaluate_module_path("erc"))
    with pytest.raises(
        TypeError, match=r"^predictions\[0\] must be a str label or an int index; got float 1\.0"
    ):
        erc.compute(predictions=[1.0], references=[1])
    for name in ("binary_sentiment", "ecpe"):
        with pytest.raises(TypeError, match=r"^predictions\[0\] must be a str answer; got int 5$"):
            evaluate.load(evaluate_module_path(name)).compute(predictions=[5], references=["Positive."])


@pytest.mark.parametrize("function", [msa_regression_metrics, sims_regression_metrics])
def test_regression_refuses_booleans_and_complex_numbers(function):
    with pytest.raises(
        TypeError, match=r"^predictions must contain real numbers only; got bool True at index 0"
    ):
        function([True, 0.5], [0.1, 0.2])
    with pytest.raises(TypeError, match=r"^references must contain real numbers only; got complex \(1\+2j\)"):
        function([0.1, 0.2], np.array([1 + 2j, 0.5]))


def test_msa_regression_large_values_neither_overflow_nor_turn_nan():
    metrics = msa_regression_metrics([0.0, 1.8e154], [0.0, 1.9e154])
    assert metrics["Corr"] == pytest.approx(1.0) and metrics["MAE"] == pytest.approx(0.05e154)
    with pytest.raises(ValueError, match="mean absolute error of these values exceeds the float64 range"):
        msa_regression_metrics([1.7e308], [-1.7e308])
    assert msa_regression_metrics([2**70, 0], [1, 0])["MAE"] == pytest.approx(2**69)
