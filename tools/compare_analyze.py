"""Compare two ``kiosk analyze --json`` runs of the same pictures, face by face.

Made for checking that two machines (for example an x86 build machine and an arm64 kiosk) give
the same answers with the same software and models::

    python -m tools.compare_analyze x86.jsonl arm64.jsonl [--box-px 2] [--age 1] [--female 0.05]

Faces are paired per picture (file name without its folder, and frame number) by box overlap.
For each pair the table shows how far the boxes moved (largest corner difference, pixels), the
age difference (years), the difference in P(female) and whether the dominant emotion is the
same. The exit status is 0 when every picture has the same number of faces and every pair is
within the tolerances, 1 otherwise, 2 when an input cannot be read. Pure Python: it runs on any
machine without the appliance's packages.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import PurePath

# What "the same answer" means: the acceptance limits between kernel sets and CPUs.
BOX_PX = 2.0
AGE_YEARS = 1.0
P_FEMALE = 0.05


@dataclass(frozen=True)
class Tolerances:
    box_px: float = BOX_PX
    age: float = AGE_YEARS
    female: float = P_FEMALE


def load_records(path: str) -> list[dict]:
    """The face records of one ``kiosk analyze --json`` output (one JSON object per line)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or "file" not in rec or "box" not in rec:
                raise ValueError(f"{path}:{n}: not a face record (needs 'file' and 'box')")
            records.append(rec)
    return records


def picture_key(rec: dict) -> tuple[str, int]:
    """(file name without folders, frame number): the same picture on both machines."""
    return PurePath(str(rec["file"]).replace("\\", "/")).name, int(rec.get("frame", 0))


def p_female(rec: dict) -> float | None:
    """P(female) from a record's ``gender`` and ``gender_prob`` (None without attributes)."""
    if "gender" not in rec or rec.get("gender_prob") is None:
        return None
    p = float(rec["gender_prob"])
    return p if rec["gender"] == "female" else 1.0 - p


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pair_faces(ref: list[dict], cand: list[dict]) -> tuple[list[tuple[dict, dict]], list, list]:
    """Greedy pairing by box IoU (best pairs first, IoU > 0.3).

    Returns:
        (pairs, unpaired reference records, unpaired candidate records).
    """
    scored = sorted(((_iou(r["box"], c["box"]), i, j) for i, r in enumerate(ref)
                     for j, c in enumerate(cand)), reverse=True)
    used_r, used_c, pairs = set(), set(), []
    for iou, i, j in scored:
        if iou <= 0.3 or i in used_r or j in used_c:
            continue
        used_r.add(i)
        used_c.add(j)
        pairs.append((ref[i], cand[j]))
    pairs.sort(key=lambda p: (p[0]["box"][0], p[0]["box"][1]))
    return (pairs, [r for i, r in enumerate(ref) if i not in used_r],
            [c for j, c in enumerate(cand) if j not in used_c])


@dataclass
class Row:
    picture: str
    box_px: float | None = None
    age: float | None = None
    female: float | None = None
    emotion: str = ""
    problems: tuple[str, ...] = ()


def compare_pair(picture: str, r: dict, c: dict, tol: Tolerances) -> Row:
    """One paired face: its differences and what is out of tolerance."""
    box = max(abs(float(a) - float(b)) for a, b in zip(r["box"], c["box"], strict=True))
    problems = []
    if box > tol.box_px:
        problems.append(f"box {box:.1f} px")
    age = female = None
    if ("age" in r) != ("age" in c):
        problems.append("attributes on one side only")
    emotion = ""
    if "age" in r and "age" in c:
        age = abs(float(r["age"]) - float(c["age"]))
        if age > tol.age:
            problems.append(f"age {age:.2f} y")
        fr, fc = p_female(r), p_female(c)
        if fr is not None and fc is not None:
            female = abs(fr - fc)
            if female > tol.female:
                problems.append(f"P(female) {female:.3f}")
        er, ec = r.get("emotion"), c.get("emotion")
        emotion = er if er == ec else f"{er}/{ec}"
        if er != ec:
            problems.append(f"emotion {er} vs {ec}")
    return Row(picture, box, age, female, emotion, tuple(problems))


def compare(ref: list[dict], cand: list[dict], tol: Tolerances = Tolerances()) -> list[Row]:
    """Every face of every picture, reference against candidate."""
    by_pic: dict[tuple[str, int], tuple[list, list]] = {}
    for side, records in ((0, ref), (1, cand)):
        for rec in records:
            by_pic.setdefault(picture_key(rec), ([], []))[side].append(rec)
    rows = []
    for key in sorted(by_pic):
        name = key[0] if key[1] == 0 else f"{key[0]}#{key[1]}"
        pairs, only_r, only_c = pair_faces(*by_pic[key])
        rows += [compare_pair(name, r, c, tol) for r, c in pairs]
        rows += [Row(name, problems=("face only in the reference run",)) for _ in only_r]
        rows += [Row(name, problems=("face only in the candidate run",)) for _ in only_c]
    return rows


def _fmt(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_table(rows: list[Row], tol: Tolerances) -> str:
    head = (f"{'picture':<28} {'box px':>7} {'age y':>6} {'P(f)':>6}  {'emotion':<17} result")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.picture[:28]:<28} {_fmt(r.box_px, 2):>7} {_fmt(r.age, 2):>6} "
                     f"{_fmt(r.female, 3):>6}  {r.emotion[:17]:<17} "
                     f"{'ok' if not r.problems else 'DIFFERS: ' + ', '.join(r.problems)}")
    worst = [max((getattr(r, k) for r in rows if getattr(r, k) is not None), default=None)
             for k in ("box_px", "age", "female")]
    bad = sum(1 for r in rows if r.problems)
    lines.append("-" * len(head))
    lines.append(f"{len(rows)} faces; largest differences: box {_fmt(worst[0], 2)} px "
                 f"(tolerance {tol.box_px:g}), age {_fmt(worst[1], 2)} y ({tol.age:g}), "
                 f"P(female) {_fmt(worst[2], 3)} ({tol.female:g}); "
                 + ("all within tolerance" if not bad else f"{bad} faces out of tolerance"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare_analyze",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="kiosk analyze --json output of the reference machine")
    parser.add_argument("candidate", help="the same pictures analyzed on the other machine")
    parser.add_argument("--box-px", type=float, default=BOX_PX)
    parser.add_argument("--age", type=float, default=AGE_YEARS)
    parser.add_argument("--female", type=float, default=P_FEMALE)
    args = parser.parse_args(argv)
    tol = Tolerances(args.box_px, args.age, args.female)
    try:
        ref, cand = load_records(args.reference), load_records(args.candidate)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not ref and not cand:
        print("error: no faces in either run", file=sys.stderr)
        return 2
    rows = compare(ref, cand, tol)
    print(format_table(rows, tol))
    return 1 if any(r.problems for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
