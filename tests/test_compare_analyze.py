"""``tools.compare_analyze``: two ``kiosk analyze --json`` runs compared face by face."""

from __future__ import annotations

import json

import pytest

from tools.compare_analyze import Tolerances, compare, load_records, main, p_female


def face(file="pics/a.jpg", box=(10, 10, 50, 50), age=30.0, gender="female", p=0.8,
         emotion="happy", frame=0) -> dict:
    return {"file": file, "frame": frame, "t": 0.0, "box": list(box), "score": 0.9, "age": age,
            "age_group": "25-37", "gender": gender, "gender_prob": p, "emotion": emotion,
            "emotions": {emotion: 0.9}}


def write(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_p_female_reads_either_side_of_the_gender_answer():
    assert p_female(face(gender="female", p=0.8)) == pytest.approx(0.8)
    assert p_female(face(gender="male", p=0.8)) == pytest.approx(0.2)
    assert p_female({"file": "x", "box": [0, 0, 1, 1]}) is None


def test_identical_runs_from_different_folders_agree(tmp_path, capsys):
    a = [face("/host/pics/a.jpg"), face("/host/pics/a.jpg", box=(100, 10, 140, 50))]
    b = [face("/opt/kiosk/pictures/a.jpg", box=(100, 10, 140, 50)),
         face("/opt/kiosk/pictures/a.jpg")]
    assert main([write(tmp_path / "a", a), write(tmp_path / "b", b)]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok") == 2 and "all within tolerance" in out


@pytest.mark.parametrize("change,problem", [
    ({"box": (12.5, 10, 50, 50)}, "box 2.5 px"),
    ({"age": 31.2}, "age 1.20 y"),
    ({"p": 0.74}, "P(female) 0.060"),
    ({"gender": "male", "p": 0.2}, None),  # the same P(female) said the other way round
    ({"emotion": "sad"}, "emotion happy vs sad"),
])
def test_each_tolerance(change, problem):
    rows = compare([face()], [face(**change)])
    assert len(rows) == 1
    if problem is None:
        assert rows[0].problems == ()
    else:
        assert any(problem in p for p in rows[0].problems), rows[0].problems


def test_within_tolerance_is_not_a_difference():
    rows = compare([face()], [face(box=(11.9, 10, 50, 51.9), age=30.9, p=0.76)])
    assert rows[0].problems == ()
    assert rows[0].box_px == pytest.approx(1.9) and rows[0].female == pytest.approx(0.04)


def test_a_face_found_on_one_side_only_fails(tmp_path, capsys):
    a = [face(), face(box=(200, 10, 240, 50))]
    assert main([write(tmp_path / "a", a), write(tmp_path / "b", [face()])]) == 1
    assert "face only in the reference run" in capsys.readouterr().out
    rows = compare([face()], [face(frame=3)])  # another frame is another picture
    assert {r.problems for r in rows} == {("face only in the reference run",),
                                          ("face only in the candidate run",)}


def test_tolerances_can_be_changed(tmp_path):
    a, b = write(tmp_path / "a", [face()]), write(tmp_path / "b", [face(age=32.0)])
    assert main([a, b]) == 1
    assert main([a, b, "--age", "2.5"]) == 0
    assert compare([face()], [face(age=32.0)], Tolerances(age=2.5))[0].problems == ()


def test_unreadable_input_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.write_text("{not json\n")
    good = write(tmp_path / "good", [face()])
    assert main([good, str(bad)]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert main([good, str(tmp_path / "missing")]) == 2
    with pytest.raises(ValueError, match="not a face record"):
        load_records(write(tmp_path / "odd", [{"file": "a.jpg"}]))
