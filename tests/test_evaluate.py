"""``python -m tools.evaluate`` on fixtures in every public layout, with a tiny real model."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import tensorflow  # noqa: E402,F401  the [train] extra; the test command installs it (a missing one fails)

from device.types import EMOTIONS
from tools.evaluation.device_path import Predictions
from tools.evaluation.sets import age_gender_metrics, ck_predictions
from tools.training.metrics import macro_f1


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def _portrait():
    from device.models import PORTRAIT

    return cv2.resize(cv2.imread(str(PORTRAIT)), (200, 200))


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    from tests.test_train_smoke import write_tiny_cache
    from tests.tiny_models import make_models_dir

    root = tmp_path_factory.mktemp("eval")
    models = make_models_dir(root / "models")
    blank = np.full((200, 200, 3), 90, np.uint8)
    _write(root / "utk" / "30_0_0_20170101000000001.jpg.chip.jpg", _portrait())
    _write(root / "utk" / "70_1_1_20170101000000002.jpg.chip.jpg", blank)
    _write(root / "utk" / "5_1_20170101000000003.jpg.chip.jpg", blank)  # malformed: skipped
    split = root / "ferplus" / "FER2013Test"
    split.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(split / "label.csv", "w", newline="") as f, \
            open(root / "ferplus" / "fer2013_labels.csv", "w", newline="") as g:
        w, o = csv.writer(f), csv.writer(g)
        o.writerow(["Image name", "Usage", "emotion"])
        votes = [[8, 1, 0, 0, 0, 0, 0, 1, 0, 0], [0, 9, 1, 0, 0, 0, 0, 0, 0, 0],
                 [0, 0, 0, 0, 0, 0, 0, 0, 10, 0]]
        for i, v in enumerate(votes):
            name = f"fer{i:07d}.png"
            _write(split / name, rng.integers(0, 255, (48, 48), dtype=np.uint8))
            w.writerow([name, "(0, 0, 48, 48)", *v])
            o.writerow([name, "PrivateTest", [6, 3, 2][i]])
    for cls in ("anger", "happy", "contempt"):
        _write(root / "ck" / cls / "S010_001.png", rng.integers(0, 255, (48, 48), dtype=np.uint8))
    _write(root / "aaf" / "aglined faces" / "00001A30.jpg", _portrait())
    (root / "aaf" / "image sets").mkdir(parents=True)
    (root / "aaf" / "image sets" / "val.txt").write_text("00001A30.jpg 0\n")
    cache = write_tiny_cache(root / "faces.npz", n=80)
    from tests.test_distill import _teacher

    _teacher(root / "reference.keras")  # a tiny 7-emotion Keras classifier, like fer's
    return root, models, cache


@pytest.mark.slow
def test_evaluate_writes_exact_json_keys_and_report(fixtures):
    from tools.evaluate import main

    root, models, cache = fixtures
    out = root / "out"
    out.mkdir(exist_ok=True)
    argv = ["--utkface", str(root / "utk"), "--ferplus", str(root / "ferplus" / "FER2013Test"),
            "--ck", str(root / "ck"), "--aaf", str(root / "aaf"), "--model", str(models),
            "--json", str(out / "eval.json"), "--report", str(out / "eval.md"),
            "--baseline", "pca", "--baseline-cache", str(cache),
            "--reference-emotion", str(root / "reference.keras")]
    assert main(argv) == 0
    res = json.loads((out / "eval.json").read_text())
    assert set(res) == {"utkface", "fer2013", "ferplus", "ck", "aaf", "baseline_pca", "analyzer",
                        "ci95", "reference_emotion"}
    assert res["analyzer"] == {"file": "tiny_multihead_int8.tflite", "models_version": "test-1",
                               "flip": False, "test_time": "none",  # the tiny one has none
                               "gender_min_age": 0.0,  # nor a min_age or a min_prob:
                               "gender_min_prob": 0.5}  # every gender is told
    assert set(res["utkface"]) == {"n", "no_face", "age_mae", "gender_acc", "gender_coverage",
                                   "age_group_acc", "by_race", "by_gender", "by_age_group"}
    assert res["utkface"]["gender_coverage"] == 1.0
    for key in ("by_race", "by_gender", "by_age_group"):
        assert all("gender_coverage" in m for m in res["utkface"][key].values())
    assert res["utkface"]["n"] == 2 and res["utkface"]["no_face"] >= 1  # the blank image
    assert set(res["fer2013"]) == {"n", "acc", "macro_f1"} and res["fer2013"]["n"] == 3
    assert set(res["ferplus"]) == {"n", "acc"} and res["ferplus"]["n"] == 2  # 'unknown' skipped
    assert res["ferplus"]["acc"] in (0.0, 0.5, 1.0)  # two faces: right on none, one or both
    assert res["ck"]["n"] == 2  # contempt skipped
    assert set(res["aaf"]) == {"n", "no_face", "age_mae", "gender_acc", "gender_coverage"}
    assert res["aaf"]["n"] == 1
    assert set(res["baseline_pca"]) >= {"utkface", "fer2013", "ferplus", "ck", "aaf"}
    ci = res["ci95"]
    assert set(ci) == {"utkface", "fer2013", "ferplus", "ck", "aaf"}
    assert ci["fer2013"]["acc"][0] <= res["fer2013"]["acc"] <= ci["fer2013"]["acc"][1]
    assert ci["aaf"]["age_mae"][0] <= res["aaf"]["age_mae"] <= ci["aaf"]["age_mae"][1]
    ref = res["reference_emotion"]
    assert ref["file"] == "reference.keras" and ref["flip"] is False
    assert set(ref) == {"file", "flip", "fer2013", "ferplus", "ck"}
    assert ref["fer2013"]["n"] == 3 and ref["ferplus"]["n"] == 2 and ref["ck"]["n"] == 2
    for key in ("fer2013", "ferplus", "ck"):  # ours - reference, face by face
        paired = ref[key]["paired"]
        assert paired["acc_diff"] == pytest.approx(res[key]["acc"] - ref[key]["acc"])
        assert paired["only_a"] - paired["only_b"] == round(paired["acc_diff"] * ref[key]["n"])
    report = (out / "eval.md").read_text()
    assert "Gender Shades" in report and "race: white" in report
    assert "mirror averaging off" in report
    assert "Emotion confusion" in report
    assert "Reference emotion model, same faces" in report and "McNemar" in report
    assert "model (95 % CI)" in report
    assert "gender coverage (share told)" in report and "| gender coverage |" in report
    assert "at any age, whatever the likelier gender's probability" in report
    pngs = sorted(p.name for p in out.glob("*.png"))  # matplotlib is in the test environment
    assert "plots skipped" not in report
    assert "eval_confusion_fer2013.png" in pngs and "eval_age_utkface.png" in pngs


def test_model_may_be_a_tflite_beside_its_manifest(fixtures):
    from tools.evaluation.device_path import DevicePath, models_dir_for

    _, models, _ = fixtures
    folder, tmp = models_dir_for(models / "tiny_multihead_int8.tflite")
    pred = DevicePath(folder).predict([np.zeros((64, 64), np.uint8)] * 2)
    assert pred.emotion.shape == (2, 7) and pred.age.shape == (2,)
    tmp.cleanup()


@pytest.mark.slow
def test_aaf_val_slice_is_the_slice_training_kept_out(fixtures, tmp_path, capsys):
    from tools.evaluate import main
    from tools.prepare import utk_split

    root, models, _ = fixtures
    aaf = tmp_path / "aaf_train"
    (aaf / "aglined faces").mkdir(parents=True)
    (aaf / "image sets").mkdir()
    portrait = cv2.imread(str(root / "aaf" / "aglined faces" / "00001A30.jpg"))
    lines = []
    for i in range(20):  # ages 20..39: the slice's ages say which faces were read
        name = f"{i:05d}A{20 + i:02d}.jpg"
        cv2.imwrite(str(aaf / "aglined faces" / name), portrait)
        lines.append(f"{name} {i % 2}")
    (aaf / "image sets" / "train.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "eval.json"
    assert main(["--aaf", str(aaf), "--aaf-val-slice", "--model", str(models),
                 "--json", str(out)]) == 0
    kept = [20 + i for i, s in enumerate(utk_split(20, 0.1, 0)) if s == 1]
    assert json.loads(out.read_text())["aaf"]["n"] == len(kept) == 2
    # no train split there: exit 2, naming the file it looked for
    assert main(["--aaf", str(root / "aaf"), "--aaf-val-slice", "--model", str(models)]) == 2
    assert "train.txt" in capsys.readouterr().err


def _with_gender(models, dest, **limits):
    """A copy of ``models``' manifest in ``dest`` whose gender head has ``limits`` set."""
    manifest = json.loads((models / "manifest.json").read_text())
    for role in ("detector", "analyzer"):
        manifest[role]["file"] = str((models / manifest[role]["file"]).resolve())
    manifest["analyzer"]["heads"]["gender"].update(limits)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def _with_min_age(models, dest, min_age):
    return _with_gender(models, dest, min_age=min_age)


def test_genders_not_told_are_predicted_as_minus_one(fixtures, tmp_path):
    from tools.evaluation.device_path import UNTOLD, DevicePath

    _, models, _ = fixtures
    crops = [np.zeros((64, 64), np.uint8)] * 2
    assert set(DevicePath(models).predict(crops).gender) <= {0, 1}
    pred = DevicePath(_with_min_age(models, tmp_path / "m", 150.0)).predict(crops)
    assert pred.gender.tolist() == [UNTOLD, UNTOLD] and pred.age.shape == (2,)


def test_gender_accuracy_is_over_the_faces_told_and_coverage_is_their_share():
    from tools.evaluation.sets import gender_scores, told

    truth = np.array([0, 1, 1, 0, 1])
    pred = np.array([0, -1, 1, 1, -1])
    assert told(pred).tolist() == [True, False, True, True, False]
    assert gender_scores(truth, pred) == {"gender_acc": pytest.approx(2 / 3),
                                          "gender_coverage": pytest.approx(3 / 5)}
    assert gender_scores(truth, [0, 1, 1, 0, 1]) == {"gender_acc": 1.0, "gender_coverage": 1.0}
    assert gender_scores([0, 1], [-1, -1]) == {"gender_acc": None, "gender_coverage": 0.0}
    assert gender_scores([], []) == {"gender_acc": None, "gender_coverage": None}


def test_fairness_breakdowns_give_coverage_per_group():
    ages = np.array([1.0, 2.0, 30.0, 30.0, 70.0])
    genders = np.array([0, 1, 1, 0, 1])
    races = np.array([0, 0, 0, 1, 2])
    pred = Predictions(age=np.array([1.5, 2.5, 30.0, 40.0, 70.0]),
                       gender=np.array([-1, -1, 1, 1, 1]), emotion=np.zeros((5, 7)))
    m = age_gender_metrics(ages, genders, races, pred)
    assert m["gender_acc"] == pytest.approx(2 / 3) and m["gender_coverage"] == pytest.approx(0.6)
    assert m["by_age_group"]["0-2"]["gender_acc"] is None
    assert m["by_age_group"]["0-2"]["gender_coverage"] == 0.0
    assert m["by_age_group"]["25-37"] == {**m["by_age_group"]["25-37"], "gender_acc": 0.5,
                                          "gender_coverage": 1.0}
    assert m["by_race"]["white"]["gender_coverage"] == pytest.approx(1 / 3)
    assert m["by_race"]["white"]["gender_acc"] == 1.0
    assert m["by_gender"]["male"]["gender_coverage"] == 0.5
    assert m["by_gender"]["female"]["gender_coverage"] == pytest.approx(2 / 3)
    json.dumps(m, allow_nan=False)  # None, not NaN, where no face was told


def test_intervals_and_confusion_use_the_faces_told():
    from tools.evaluation.report import confusion_table, fairness, told_faces
    from tools.evaluation.sets import intervals
    from tools.evaluation.stats import wilson_interval

    d = {"ages": np.array([1.0, 30, 40, 50]), "pred_age": np.array([2.0, 30, 41, 50]),
         "genders": np.array([1, 1, 0, 1]), "pred_gender": np.array([-1, 1, 1, 1])}
    ci = intervals({"utkface": d, "aaf": {**d, "pred_gender": np.array([-1, -1, -1, -1])}})
    assert ci["utkface"]["gender_acc"] == pytest.approx(wilson_interval(2, 3), abs=1e-4)
    assert ci["aaf"]["gender_acc"] is None
    truth, pred = told_faces(d["genders"], d["pred_gender"])
    assert truth.tolist() == [1, 0, 1] and pred.tolist() == [1, 1, 1]
    table = confusion_table(truth, pred, ["male", "female"])
    assert table[2] == "| **male** | 0 | 1 | 0% |" and table[3] == "| **female** | 0 | 2 | 100% |"
    rows = fairness({"by_age_group": {"0-2": {"n": 2, "age_mae": 0.5, "gender_acc": None,
                                              "gender_coverage": 0.0, "age_group_acc": 1.0}}})
    assert rows[0] == "| group | n | age MAE | gender acc | gender coverage | age-group acc |"
    assert rows[2] == "| age group: 0-2 | 2 | 0.50 | – | 0.0% | 100.0% |"


def test_the_baseline_is_scored_on_the_same_faces_as_the_model():
    from tools.evaluation.sets import baseline_gender

    class Baseline:
        def predict_gender(self, crops):
            self.seen = list(crops)
            return np.ones(len(crops), int)

    base = Baseline()
    out = baseline_gender(base, ["a", "b", "c", "d"], np.array([1, 0, 1, 1]),
                          np.array([-1, 0, 1, -1]))
    assert base.seen == ["b", "c"] and out == {"gender_acc": 0.5}
    assert baseline_gender(base, ["a"], np.array([1]), np.array([-1])) == {"gender_acc": None}


def test_faces_the_model_is_unsure_of_are_predicted_as_minus_one(fixtures, tmp_path):
    from tools.evaluation.device_path import UNTOLD, DevicePath

    _, models, _ = fixtures
    crops = [np.zeros((64, 64), np.uint8), np.full((64, 64), 200, np.uint8)]
    told = DevicePath(models).predict(crops).gender.tolist()
    assert set(told) <= {0, 1}
    probs = sorted(a.gender_prob for a in DevicePath(models).analyzer.analyze(crops))
    # a floor above the surer face's probability leaves both untold, one at the less sure
    # face's leaves both told, one between them only the less sure face untold
    above = DevicePath(_with_gender(models, tmp_path / "above", min_prob=min(
        probs[1] + 1e-4, 0.9999))).predict(crops).gender.tolist()
    at = DevicePath(_with_gender(models, tmp_path / "at", min_prob=probs[0])).predict(crops)
    assert above == [UNTOLD, UNTOLD] and at.gender.tolist() == told
    if probs[1] - probs[0] > 1e-3:
        between = DevicePath(_with_gender(models, tmp_path / "between", min_prob=(
            probs[0] + probs[1]) / 2)).predict(crops).gender.tolist()
        assert between.count(UNTOLD) == 1 and set(between) - {UNTOLD} <= set(told)


def test_the_converter_can_write_the_gender_min_age(tmp_path):
    from device.analyzer import Analyzer
    from device.errors import ModelError
    from tests.tiny_models import make_models_dir
    from tools.evaluation.manifest import analyzer_entry

    models = make_models_dir(tmp_path / "models")
    model = models / "tiny_multihead_int8.tflite"
    assert "min_age" not in analyzer_entry(model, models)["heads"]["gender"]
    entry = analyzer_entry(model, models, gender_min_age=4)
    assert entry["heads"]["gender"]["min_age"] == 4.0
    assert entry["heads"]["gender"]["labels"] == ["male", "female"]
    manifest = json.loads((models / "manifest.json").read_text())
    manifest["analyzer"] = entry
    (models / "manifest.json").write_text(json.dumps(manifest))
    assert Analyzer(models).gender_min_age == 4.0
    for bad in (-1, "4"):
        with pytest.raises(ModelError, match=r"heads\.gender\.min_age"):
            analyzer_entry(model, models, gender_min_age=bad)


def test_the_converter_can_write_the_gender_min_prob(tmp_path):
    from device.analyzer import Analyzer
    from device.errors import ModelError
    from tests.tiny_models import make_models_dir
    from tools.evaluation.manifest import analyzer_entry

    models = make_models_dir(tmp_path / "models")
    model = models / "tiny_multihead_int8.tflite"
    assert "min_prob" not in analyzer_entry(model, models)["heads"]["gender"]
    assert Analyzer(models).gender_min_prob == 0.5  # absent: the likelier gender is told
    entry = analyzer_entry(model, models, gender_min_age=15, gender_min_prob=0.7)
    assert entry["heads"]["gender"] == {"output": "gender", "labels": ["male", "female"],
                                        "min_age": 15.0, "min_prob": 0.7}
    manifest = json.loads((models / "manifest.json").read_text())
    manifest["analyzer"] = entry
    (models / "manifest.json").write_text(json.dumps(manifest))
    assert Analyzer(models).gender_min_prob == 0.7
    for bad in (0.4, 1.0, 1, True, "0.7", None, float("nan")):
        if bad is not None:  # None leaves the key out
            with pytest.raises(ModelError, match=r"heads\.gender\.min_prob"):
                analyzer_entry(model, models, gender_min_prob=bad)
        manifest["analyzer"]["heads"]["gender"]["min_prob"] = bad
        (models / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ModelError, match=r"heads\.gender\.min_prob"):
            Analyzer(models)


def test_ck_argmax_ignores_neutral():
    probs = np.zeros((1, 7))
    probs[0, EMOTIONS.index("neutral")] = 0.9
    probs[0, EMOTIONS.index("sad")] = 0.1
    assert ck_predictions(probs).tolist() == [EMOTIONS.index("sad")]


def test_fairness_breakdowns():
    ages = np.array([1.0, 30.0, 30.0, 70.0])
    genders = np.array([0, 1, 0, 1])
    races = np.array([0, 0, 1, 2])
    pred = Predictions(age=np.array([2.0, 30.0, 40.0, 70.0]), gender=np.array([0, 1, 1, 1]),
                       emotion=np.zeros((4, 7)))
    m = age_gender_metrics(ages, genders, races, pred)
    assert m["age_mae"] == pytest.approx(11 / 4) and m["gender_acc"] == 0.75
    assert m["by_race"]["white"]["n"] == 2 and m["by_race"]["black"]["gender_acc"] == 0.0
    assert set(m["by_gender"]) == {"male", "female"}
    assert m["by_age_group"]["25-37"]["age_mae"] == pytest.approx(5.0)
    assert "indian" not in m["by_race"]


def test_macro_f1():
    assert macro_f1([0, 1, 1], [0, 1, 1], 7) == 1.0
    assert macro_f1([0, 0], [1, 1], 2) == 0.0


def test_a_bad_reference_model_is_refused_by_name(fixtures, tmp_path):
    from tools.evaluate import main

    root, models, _ = fixtures
    bad = tmp_path / "not_a_model.keras"
    bad.write_bytes(b"garbage")
    for path in (bad, tmp_path / "missing.keras"):
        with pytest.raises(SystemExit, match=path.name):
            main(["--ferplus", str(root / "ferplus" / "FER2013Test"), "--model", str(models),
                  "--reference-emotion", str(path)])


def test_the_report_says_where_the_mirror_average_happens():
    from tools.evaluation.report import mirror_words

    assert mirror_words({"flip": True, "test_time": "flip"}).startswith("on")
    assert "inside the model" in mirror_words({"flip": False, "test_time": "in_model"})
    assert mirror_words({"flip": False, "test_time": "none"}) == "off"
    assert mirror_words({"flip": False}) == "off"  # reports from before test_time was recorded


def test_caches_have_a_documented_home_and_reports_name_no_ones_machine(monkeypatch, tmp_path):
    from pathlib import Path

    from tools.evaluate import parse_args
    from tools.locations import cache_dir, default_faces, shown

    monkeypatch.delenv("AUDIENCE_KIOSK_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "audience-kiosk"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_faces() == tmp_path / "xdg" / "audience-kiosk" / "faces.npz"
    monkeypatch.setenv("AUDIENCE_KIOSK_CACHE", str(tmp_path / "c"))
    assert parse_args(["--ck", "x"]).baseline_cache == tmp_path / "c" / "faces.npz"
    home = str(Path.home())
    assert shown(f"{home}/.cache/audience-kiosk/faces.npz") == "~/.cache/audience-kiosk/faces.npz"
    assert shown(f"--baseline-cache={home}/c.npz") == "--baseline-cache=~/c.npz"
    assert shown("../shared/data/utkface") == "../shared/data/utkface"


def test_a_missing_baseline_cache_is_named(tmp_path):
    from tools.evaluate import main

    with pytest.raises(SystemExit, match="no tools.prepare cache at .*nowhere.npz"):
        main(["--ck", str(tmp_path), "--baseline", "pca",
              "--baseline-cache", str(tmp_path / "nowhere.npz")])
