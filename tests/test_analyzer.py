"""The analyzer runtime on a real (tiny, untrained) int8 TFLite model, and age-group maths."""

import json

import numpy as np
import pytest

from device.analyzer import Analyzer, decode_age
from device.errors import ModelError, NoAttributeModel
from device.manifest import age_group, parse_age_groups
from device.pipeline import VisionPipeline
from device.types import EMOTIONS
from tests.shared_data import sample
from tests.tiny_models import make_models_dir


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return make_models_dir(tmp_path_factory.mktemp("models"))


def test_default_age_groups_are_the_papers_eight_made_contiguous():
    groups = parse_age_groups(["0-2", "3-7", "8-14", "15-24", "25-37", "38-47", "48-59", "60+"])
    ages = (0, 2.9, 3, 7.99, 8, 24.5, 25, 37.9, 38, 59.9, 60, 99)
    assert [age_group(a, groups) for a in ages] == [
        "0-2", "0-2", "3-7", "3-7", "8-14", "15-24", "25-37", "25-37", "38-47", "48-59", "60+",
        "60+"]


@pytest.mark.parametrize("bad", [["0-2", "4-7"], ["a-b"], [], ["5-3"]])
def test_bad_age_groups_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_age_groups(bad)


def test_decode_age_regression_and_distribution():
    assert decode_age(np.array([[31.5], [4.0]]), {"kind": "regression"}).tolist() == [31.5, 4.0]
    probs = np.zeros((1, 101))
    probs[0, 20], probs[0, 30] = 0.5, 0.5
    head = {"kind": "distribution", "bins": list(range(101))}
    assert decode_age(probs, head)[0] == pytest.approx(25)
    with pytest.raises(ModelError):
        decode_age(probs, {"kind": "histogram"})


@pytest.mark.parametrize("age_kind", ["distribution", "regression"])
def test_analyzer_outputs_are_well_formed(tmp_path, age_kind):
    a = Analyzer(make_models_dir(tmp_path, age_kind))
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (64, 64), dtype=np.uint8) for _ in range(3)]
    out = a.analyze(crops)
    assert len(out) == 3
    for attrs in out:
        assert set(attrs.emotions) == set(EMOTIONS)
        assert sum(attrs.emotions.values()) == pytest.approx(1, abs=0.02)
        assert attrs.gender in ("male", "female") and 0.5 <= attrs.gender_prob <= 1
        assert attrs.age >= 0 and attrs.age_group == age_group(attrs.age, a.groups)
    # the batch gives the same answers as one crop at a time
    assert a.analyze(crops[1:2])[0] == out[1]


def test_wrong_crop_size_is_rejected(models_dir):
    with pytest.raises(ValueError, match="64x64x1"):
        Analyzer(models_dir).analyze([np.zeros((48, 48), np.uint8)])


def test_no_manifest_or_no_analyzer_entry_says_so(tmp_path, models_dir):
    with pytest.raises(NoAttributeModel, match="no attribute model"):
        Analyzer(tmp_path)
    manifest = json.loads((models_dir / "manifest.json").read_text())
    del manifest["analyzer"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(NoAttributeModel):
        Analyzer(tmp_path)


def test_tampered_model_fails_its_sha256(tmp_path, models_dir):
    dest = make_models_dir(tmp_path / "m")
    model = dest / "tiny_multihead_int8.tflite"
    data = bytearray(model.read_bytes())
    data[-10] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        Analyzer(dest)


def test_pipeline_on_real_image_gives_attributes_per_face(models_dir):
    import cv2

    p = VisionPipeline(models_dir)
    faces = p.process(cv2.imread(str(sample("two_people.jpg"))))
    assert len(faces) == 2
    assert all(attrs is not None for _, attrs in faces)
    assert p.self_test()["faces"] == 1
    # analyze_every=3: attributes on frames 0 and 3 only
    p3 = VisionPipeline(models_dir, analyze_every=3)
    img = cv2.imread(str(sample("two_people.jpg")))
    got = [all(a is not None for _, a in p3.process(img)) for _ in range(4)]
    assert got == [True, False, False, True]


def test_pipeline_analyses_each_tracked_face_again_only_after_reanalyze_s(models_dir):
    import cv2

    from device.tracking import Tracker
    from device.types import Frame

    img = cv2.imread(str(sample("two_people.jpg")))
    p, tracker = VisionPipeline(models_dir, reanalyze_s=0.2), Tracker()
    got = []
    for i in range(6):  # 10 frames a second
        frame = Frame(img, timestamp=i / 10, index=i)
        faces = p.process(frame, tracker=tracker)
        got.append([a is not None for _, a in faces])
        tracker.update([d for d, _ in faces], [a for _, a in faces], frame.timestamp)
    assert got == [[True, True], [False, False]] * 3
    assert all(tr.n_analyzed == 3 and tr.hits == 6 for tr in tracker.active)
    # without a tracker (kiosk analyze, pictures) every face is analysed every time
    assert all(a is not None for _, a in p.process(Frame(img, timestamp=0.65)))
    with pytest.raises(ValueError, match="reanalyze_s"):
        VisionPipeline(models_dir, reanalyze_s=-1)


def test_probabilities_are_recognised_even_when_int8_rounding_breaks_their_sum():
    from device.analyzer import _as_probs

    coarse = np.array([[0.5, 0.3, 0.1, 0.0, 0.0, 0.0, 0.0]])  # sums to 0.9 after int8 rounding
    assert _as_probs(coarse)[0] == pytest.approx([5 / 9, 3 / 9, 1 / 9, 0, 0, 0, 0])
    logits = np.array([[2.0, -1.0]])
    assert _as_probs(logits)[0] == pytest.approx([0.9526, 0.0474], abs=1e-4)
    assert _as_probs(np.zeros((1, 4)))[0] == pytest.approx([0.25] * 4)


def _with_test_time(src, dest, value):
    dest.mkdir()
    manifest = json.loads((src / "manifest.json").read_text())
    for name in (manifest["analyzer"]["file"], manifest["detector"]["file"]):
        if name:
            (dest / name).write_bytes((src / name).read_bytes())
    manifest["analyzer"]["test_time"] = value
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def test_mirror_averaging_is_the_mean_of_the_face_and_its_mirror(tmp_path, models_dir):
    flipped = Analyzer(_with_test_time(models_dir, tmp_path / "flip", "flip"))
    assert flipped.flip
    plain = Analyzer(models_dir)
    assert not plain.flip
    rng = np.random.default_rng(3)
    crops = [rng.integers(0, 256, (64, 64), dtype=np.uint8) for _ in range(2)]
    both = flipped.analyze(crops)
    for crop, got in zip(crops, both):
        a, b = plain.analyze([crop])[0], plain.analyze([np.ascontiguousarray(crop[:, ::-1])])[0]
        assert a != b  # the mirror image is a different input: the average is not a no-op
        assert got.age == pytest.approx((a.age + b.age) / 2, abs=1e-4)
        for e in EMOTIONS:
            assert got.emotions[e] == pytest.approx((a.emotions[e] + b.emotions[e]) / 2, abs=1e-5)
        fem = [x.gender_prob if x.gender == "female" else 1 - x.gender_prob for x in (a, b)]
        got_fem = got.gender_prob if got.gender == "female" else 1 - got.gender_prob
        assert got_fem == pytest.approx(sum(fem) / 2, abs=1e-5)
    # the constructor can force it either way, whatever the manifest says
    assert not Analyzer(tmp_path / "flip", flip=False).flip
    assert Analyzer(models_dir, flip=True).analyze(crops) == both


def test_a_model_that_mirrors_itself_gets_one_pass(tmp_path, models_dir):
    in_model = Analyzer(_with_test_time(models_dir, tmp_path / "in_model", "in_model"))
    assert not in_model.flip and in_model.test_time == "in_model"
    crop = np.random.default_rng(4).integers(0, 256, (64, 64), dtype=np.uint8)
    # the runtime adds nothing: the answer is the file's own, as with "none"
    assert in_model.analyze([crop]) == Analyzer(models_dir).analyze([crop])
    assert in_model.analyze([crop]) != Analyzer(models_dir, flip=True).analyze([crop])


def test_unknown_test_time_in_the_manifest_is_refused(tmp_path, models_dir):
    with pytest.raises(ModelError, match="test_time 'tencrop'"):
        Analyzer(_with_test_time(models_dir, tmp_path / "bad", "tencrop"))


def test_a_model_set_with_an_unknown_test_time_fails_the_provisioning_self_test(tmp_path,
                                                                                models_dir):
    from device import kat

    assert kat.self_test(models_dir) == []
    problems = kat.self_test(_with_test_time(models_dir, tmp_path / "bad", "tencrop"))
    assert len(problems) == 1 and "test_time 'tencrop'" in problems[0]


def test_the_pipeline_follows_the_manifest_unless_told_otherwise(tmp_path, models_dir):
    flip_dir = _with_test_time(models_dir, tmp_path / "flip", "flip")
    assert VisionPipeline(flip_dir).analyzer.flip
    assert not VisionPipeline(flip_dir, analyzer_flip=False).analyzer.flip
    assert VisionPipeline(models_dir, analyzer_flip=True).analyzer.flip


def test_the_shipped_models_fit_the_budget_and_load_as_the_manifest_says():
    """The appliance's budget: detector + analyzer under 1.5 MB, and the manifest's files are the
    ones on disk (sha256), with a test_time this runtime knows."""
    from device.manifest import load_manifest, model_path
    from device.models import MODELS_DIR

    manifest = load_manifest(MODELS_DIR)
    files = [model_path(MODELS_DIR, manifest[k]) for k in ("detector", "analyzer")]
    assert sum(f.stat().st_size for f in files) < 1_500_000
    analyzer = Analyzer(MODELS_DIR)
    assert analyzer.test_time == manifest["analyzer"].get("test_time", "none")
    face = np.full((64, 64), 128, np.uint8)
    out = analyzer.analyze([face])[0]
    assert 0 <= out.age <= 100 and abs(sum(out.emotions.values()) - 1) < 0.05


# --- gender only where it can be told: heads.gender.min_age -----------------------------------

def _shipped_with_min_age(dest, min_age, min_prob=...):
    """A models folder whose manifest is the shipped one with ``heads.gender.min_age`` and
    ``min_prob`` set (the values as given, ``...``: the key left out); the entries point at the
    shipped files."""
    from device.models import MODELS_DIR

    manifest = json.loads((MODELS_DIR / "manifest.json").read_text())
    for role in ("detector", "analyzer"):
        manifest[role]["file"] = str((MODELS_DIR / manifest[role]["file"]).resolve())
    gender = manifest["analyzer"]["heads"]["gender"]
    for key, value in (("min_age", min_age), ("min_prob", min_prob)):
        gender.pop(key, None)
        if value is not ...:
            gender[key] = value
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def test_min_age_is_read_from_the_gender_head():
    from device.manifest import gender_min_age

    assert gender_min_age({"heads": {"gender": {"output": "gender"}}}) == 0.0  # absent: always
    assert gender_min_age({"heads": {"gender": {"min_age": 0}}}) == 0.0
    assert gender_min_age({"heads": {"gender": {"min_age": 3}}}) == 3.0
    assert isinstance(gender_min_age({"heads": {"gender": {"min_age": 3}}}), float)
    assert gender_min_age({"heads": {"gender": {"min_age": 7.5}}}) == 7.5


@pytest.mark.parametrize("bad", [-1, -0.5, "3", True, None, [3], {"years": 3}, float("inf"),
                                 float("nan")])
def test_a_bad_min_age_is_refused_naming_the_key(bad):
    from device.manifest import gender_min_age

    with pytest.raises(ModelError, match=r"analyzer\.heads\.gender\.min_age"):
        gender_min_age({"heads": {"gender": {"output": "gender", "min_age": bad}}})


def test_the_shipped_model_does_not_tell_gender_below_the_manifests_min_age(tmp_path):
    """The self-test portrait (about 29 years to the shipped model): told with no min_age or one
    below its age, "unknown" with no probability above it; age and emotions do not change."""
    import cv2

    from device.models import MODELS_DIR

    spec = json.loads((MODELS_DIR / "selftest" / "selftest.json").read_text())
    image = cv2.imread(str(MODELS_DIR / "selftest" / spec["image"]))
    answers = {}
    for name, min_age in (("absent", ...), ("zero", 0), ("below", 3.0), ("above", 110.0)):
        pipeline = VisionPipeline(_shipped_with_min_age(tmp_path / name, min_age))
        ((_, face),) = pipeline.process(image)
        answers[name] = face
    told = answers["absent"]
    assert told.gender in ("male", "female") and 0.5 <= told.gender_prob <= 1
    assert 3.0 < told.age < 110.0
    assert answers["zero"] == told and answers["below"] == told
    untold = answers["above"]
    assert untold.gender == "unknown" and untold.gender_prob is None
    assert (untold.age, untold.age_group, untold.emotions) == (told.age, told.age_group,
                                                               told.emotions)
    record = untold.to_dict()
    assert record["gender"] == "unknown" and record["gender_prob"] is None
    json.dumps(record)  # still plain JSON


def test_the_self_test_passes_and_reports_unknown_below_min_age(tmp_path):
    pipeline = VisionPipeline(_shipped_with_min_age(tmp_path / "m", 110.0))
    assert pipeline.analyzer.gender_min_age == 110.0
    result = pipeline.self_test()
    assert result["faces"] == 1
    assert [a["gender"] for a in result["attributes"]] == ["unknown"]


def test_a_model_set_with_a_bad_min_age_fails_its_self_test(tmp_path):
    from device import kat
    from device.pipeline import model_problems

    folder = _shipped_with_min_age(tmp_path / "bad", -2)
    with pytest.raises(ModelError, match=r"heads\.gender\.min_age must be a number of years"):
        Analyzer(folder)
    problems = kat.self_test(folder)
    assert len(problems) == 1 and "heads.gender.min_age" in problems[0]
    assert any("heads.gender.min_age" in p for p in model_problems(folder))


def test_min_age_may_be_switched_off_to_read_the_model_itself(tmp_path):
    analyzer = Analyzer(_shipped_with_min_age(tmp_path / "m", 110.0))
    face = np.full((64, 64), 128, np.uint8)
    assert analyzer.analyze([face])[0].gender == "unknown"
    analyzer.gender_min_age, analyzer.gender_min_prob = 0.0, 0.5
    assert analyzer.analyze([face])[0].gender in ("male", "female")


# --- nor where the model is unsure: heads.gender.min_prob -------------------------------------

def test_min_prob_is_read_from_the_gender_head():
    from device.manifest import gender_min_prob

    assert gender_min_prob({"heads": {"gender": {"output": "gender"}}}) == 0.5  # absent: told
    assert gender_min_prob({"heads": {"gender": {"min_prob": 0.5}}}) == 0.5
    assert gender_min_prob({"heads": {"gender": {"min_prob": 0.7}}}) == 0.7
    assert isinstance(gender_min_prob({"heads": {"gender": {"min_prob": 0.7}}}), float)


@pytest.mark.parametrize("bad", [0.49, 0, 1, 1.0, 1.5, -0.7, "0.7", True, None, [0.7],
                                 float("inf"), float("nan")])
def test_a_bad_min_prob_is_refused_naming_the_key(bad):
    from device.manifest import gender_min_prob

    with pytest.raises(ModelError, match=r"analyzer\.heads\.gender\.min_prob"):
        gender_min_prob({"heads": {"gender": {"output": "gender", "min_prob": bad}}})


def test_the_shipped_model_does_not_tell_gender_it_is_unsure_of(tmp_path):
    """The self-test portrait: told while its likelier gender's probability reaches min_prob,
    "unknown" with no probability once min_prob is above it; nothing else changes."""
    import cv2

    from device.models import MODELS_DIR

    spec = json.loads((MODELS_DIR / "selftest" / "selftest.json").read_text())
    image = cv2.imread(str(MODELS_DIR / "selftest" / spec["image"]))
    ((_, told),) = VisionPipeline(_shipped_with_min_age(tmp_path / "none", 0, ...)).process(image)
    assert told.gender in ("male", "female") and 0.5 <= told.gender_prob < 0.999
    answers = {}
    for name, floor in (("at", told.gender_prob), ("above", told.gender_prob + 0.0005)):
        pipeline = VisionPipeline(_shipped_with_min_age(tmp_path / name, 0, floor))
        ((_, answers[name]),) = pipeline.process(image)
    assert answers["at"] == told
    untold = answers["above"]
    assert untold.gender == "unknown" and untold.gender_prob is None
    assert (untold.age, untold.age_group, untold.emotions) == (told.age, told.age_group,
                                                               told.emotions)

