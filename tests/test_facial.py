"""m2se.facial: OpenFace peak frame (eqs 1-2) and FER captions, on a two-face fixture and the real CSV."""

from __future__ import annotations

import csv

import pytest

from m2se.facial import action_unit_table, fer_caption, peak_expression, peak_frame

AUS_R = ["AU01_r", "AU02_r", "AU05_r", "AU06_r", "AU12_r", "AU26_r"]
AUS_C = ["AU01_c", "AU02_c", "AU05_c", "AU06_c", "AU12_c", "AU26_c", "AU28_c"]


def write_openface(path, rows, *, with_face_id=True):
    """OpenFace 2.x style: a space after every comma, including the header."""
    columns = [
        "frame",
        *(["face_id"] if with_face_id else []),
        "timestamp",
        "confidence",
        "success",
        *AUS_R,
        *AUS_C,
    ]
    lines = [", ".join(columns)]
    for row in rows:
        values = {"timestamp": 0.04 * row["frame"], "confidence": 0.98, "success": 1, **row}
        lines.append(", ".join(str(values.get(column, 0)) for column in columns))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def two_faces(tmp_path):
    rows = [
        # face 0: peak at frame 2 (score 2.5)
        {"frame": 1, "face_id": 0, "AU06_r": 1.0},
        {"frame": 2, "face_id": 0, "AU06_r": 1.2, "AU12_r": 1.3, "AU12_c": 1},
        # a failed frame with a huge score must be ignored
        {"frame": 3, "face_id": 0, "AU26_r": 5.0, "success": 0},
        # face 1: peak at frame 3 (score 3.0 = 0.5 + 0.9 + 1.6) beats face 0
        {"frame": 1, "face_id": 1, "AU01_r": 0.2},
        {"frame": 3, "face_id": 1, "AU01_r": 0.5, "AU02_r": 0.9, "AU26_r": 1.6, "AU01_c": 1, "AU28_c": 1},
        {"frame": 4, "face_id": 1, "AU02_r": 0.4},
    ]
    return write_openface(tmp_path / "clip.csv", rows)


def test_peak_frame_best_face(two_faces):
    frame, face_id, score = peak_frame(two_faces)
    assert (frame, face_id) == (3, 1) and score == pytest.approx(3.0)


def test_peak_frame_without_face_id_is_one_face(tmp_path):
    path = write_openface(
        tmp_path / "one.csv",
        [
            {"frame": 1, "AU12_r": 0.5},
            {"frame": 2, "AU12_r": 2.0, "AU06_r": 0.1},
            {"frame": 3, "AU12_r": 2.1},
        ],
        with_face_id=False,
    )
    frame, face_id, score = peak_frame(path)
    assert (frame, face_id) == (2, 0) and score == pytest.approx(2.1)  # ties keep the earliest frame


def test_min_confidence_filters_frames(tmp_path):
    path = write_openface(
        tmp_path / "c.csv", [{"frame": 1, "AU12_r": 3.0, "confidence": 0.5}, {"frame": 2, "AU12_r": 1.0}]
    )
    assert peak_frame(path)[0] == 1
    assert peak_frame(path, min_confidence=0.8)[0] == 2


def test_caption_rule_presence_or_intensity(two_faces):
    # Face 1 at frame 3: AU01 present (flag), AU02 0.9 > 0.8, AU26 1.6 > 0.8, AU05 neither.
    assert fer_caption(two_faces, "surprise") == "Inner brows raised; Outer brows raised; Jaw dropped"
    assert fer_caption(two_faces, "Surprised", intensity_threshold=1.0) == "Inner brows raised; Jaw dropped"
    # AU28 exists only as a presence flag in OpenFace output.
    assert fer_caption(two_faces, "worried") == "Lips sucked in"
    assert fer_caption(two_faces, "happy") == ""  # the joy AUs belong to the other face
    assert fer_caption(two_faces, "neutral") == ""
    peak = peak_expression(two_faces, "fear")
    assert (peak.frame, peak.face_id) == (3, 1)
    assert peak.active_aus == ("Inner brows raised", "Outer brows raised", "Jaw dropped")


def test_caption_names_follow_the_table(two_faces):
    table = action_unit_table()
    expected = "; ".join(table.au_names[au] for au in ("AU01", "AU02", "AU26"))
    assert fer_caption(two_faces, "surprise") == expected
    assert set(table.emotion_aus["surprise"]) == {"AU01", "AU02", "AU05", "AU26"}
    assert all(au in table.au_names for aus in table.emotion_aus.values() for au in aus)


def test_unknown_emotion_names_known_ones(two_faces):
    with pytest.raises(ValueError, match=r"unknown emotion 'bored'; known emotions: anger, .*joy.*happy"):
        fer_caption(two_faces, "bored")
    with pytest.raises(TypeError, match="emotion must be a str"):
        fer_caption(two_faces, 3)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="OpenFace CSV not found"):
        peak_frame(tmp_path / "none.csv")
    no_success = write_openface(tmp_path / "fail.csv", [{"frame": 1, "AU12_r": 1.0, "success": 0}])
    with pytest.raises(
        ValueError, match=r"no successful frame \(success == 1 and confidence >= 0.0\) among its 1"
    ):
        peak_frame(no_success)
    missing = tmp_path / "missing.csv"
    missing.write_text("frame, confidence, AU12_r\n1, 0.9, 1.0\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"expected frame, success, confidence and at least one AU.*got columns frame"
    ):
        peak_frame(missing)
    no_aus = tmp_path / "no_aus.csv"
    no_aus.write_text("frame, success, confidence, AU12_c\n1, 1, 0.9, 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="at least one AU\\*_r column"):
        fer_caption(no_aus, "joy")


@pytest.mark.shared_data
def test_real_openface_csv(shared_data):
    path = shared_data / "openface" / "pyfeat_OpenFace_Test.csv"
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, skipinitialspace=True))
    scores = {
        int(row["frame"]): sum(float(v) for k, v in row.items() if k.startswith("AU") and k.endswith("_r"))
        for row in rows
        if row["success"].strip() == "1"
    }
    best = max(scores, key=scores.get)
    frame, face_id, score = peak_frame(path)
    assert (frame, face_id) == (best, 0) and score == pytest.approx(scores[best])
    assert frame == 13 and score == pytest.approx(2.99178)
    # At frame 13: AU02_r 1.076 (> 0.8), AU05_c 1, AU23_c 1; AU01_r 0.76 and AU04_r 0.61 stay below 0.8.
    assert fer_caption(path, "surprise") == "Outer brows raised; Upper lids raised"
    assert fer_caption(path, "anger") == "Upper lids raised; Lips tightened"
    assert fer_caption(path, "joy") == ""
