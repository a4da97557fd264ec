"""`kdlandmarks demo`: the whole method at toy scale on the bundled faces, then the shipped student.

Steps: prepare a store from the 24 bundled 300-W training faces -> ASM soft-landmarks -> Tough and
Tolerant teachers -> plain-L2 baseline and KD-Loss student -> evaluation of all four on the 12
bundled LFPW test faces -> the shipped student on a bundled photo. Writes report.md (with the table,
the CED plot and a picture with landmarks drawn) and returns its path.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from kdlandmarks.training.asm import fit_store_asm
from kdlandmarks.data.datasets import sample_root
from kdlandmarks.fileio import atomic_write_bytes, atomic_write_text
from kdlandmarks.evaluation.report import compare
from kdlandmarks.data.store import PrepareParams, prepare_store
from kdlandmarks.training.config import load_recipe
from kdlandmarks.models.info import arch_label
from kdlandmarks.models.zoo import installed_names

DEMO_PHOTO = "lfpw/testset/image_0001.jpg"


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def run_demo(out_dir: str | Path = "demo-output", recipe_name: str = "demo", overrides: list[str] | None = None,
             progress: bool = True) -> Path:
    from kdlandmarks.evaluation.protocols import EvaluationOptions, evaluate_model
    from kdlandmarks.training.run import Teachers, train_model

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = sample_root()
    recipe = load_recipe(recipe_name, overrides)

    _say(f"1/6 prepare: bundled 300-W training faces from {root}")
    params = PrepareParams("300w", str(root), "train", input_size=recipe.input_size, context=recipe.context,
                           margin=recipe.margin, copies=recipe.copies)
    store = prepare_store(params, out / "store", progress=progress)
    _say(f"    {store['faces']} faces x {recipe.copies} copies = {store['samples']} samples")
    asm = fit_store_asm(out / "store", recipe.asm_variance)
    _say(f"2/6 soft-landmarks: ASM keeps {asm['n_components']} components at {recipe.asm_variance:.0%} variance; "
         f"hard-to-soft distance {asm['mean_distance_nme']:.2f}% NME")
    recipe.data.store = str(out / "store")

    runs = {}
    teacher, student = arch_label(recipe.teacher.arch), arch_label(recipe.student.arch)
    for label, role, kind, loss in ((f"Tough-Teacher ({teacher})", "teacher", "tough", None),
                                    (f"Tolerant-Teacher ({teacher})", "teacher", "tolerant", None),
                                    (f"{student}, L2 (baseline)", "student", None, "l2"),
                                    (f"{student}, KD-Loss (student)", "student", None, "kd")):
        name = kind or {"l2": "baseline", "kd": "student"}[loss]
        step = "3/6" if role == "teacher" else "4/6"
        _say(f"{step} train {label}")
        summary = train_model(recipe, role, out / name, kind=kind, loss=loss,
                              teachers=Teachers(str(out / "tough" / "model.pt"), str(out / "tolerant" / "model.pt")),
                              restart=True, progress=progress)
        _say(f"    {summary['epochs_completed']} epochs in {summary['seconds']} s")
        runs[label] = out / name / "model.pt"

    _say("5/6 evaluate on the 12 bundled LFPW test faces (ground-truth crop, inter-ocular NME)")
    evaluations = {}
    quiet = EvaluationOptions(progress=False)
    for label, model in runs.items():
        eval_dir = out / f"eval-{model.parent.name}"
        evaluate_model(str(model), "300w", str(root), "lfpw/testset", eval_dir, quiet)
        evaluations[label] = eval_dir
    for name in installed_names():  # the teachers only where they are: in the source checkout
        shipped_eval = out / f"eval-shipped-{name}"
        evaluate_model(name, "300w", str(root), "lfpw/testset", shipped_eval, quiet)
        evaluations[f"shipped {name} (trained on 2012 faces)"] = shipped_eval
    table = compare(evaluations, out / "comparison", title="Demo: CED on 12 bundled LFPW test faces")
    print(table, end="")

    _say("6/6 shipped student on a bundled photo (face detector + landmarks)")
    picture = _draw_photo(root / DEMO_PHOTO, out / "photo_landmarks.jpg")
    report = _write_report(out, table, picture, time.perf_counter() - start, asm, recipe)
    _say(f"done in {time.perf_counter() - start:.0f} s; report: {report}")
    return report


def _draw_photo(photo: Path, target: Path) -> Path:
    import cv2

    from kdlandmarks.data.datasets import read_image
    from kdlandmarks.inference.detector import LandmarkDetector, draw_faces

    detector = LandmarkDetector()
    image = read_image(photo)
    faces = detector.detect(image)
    drawn = draw_faces(image, faces)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    atomic_write_bytes(target, buf.tobytes())
    _say(f"    {len(faces)} face(s) found in {photo.name}")
    return target


def _write_report(out: Path, table: str, picture: Path, seconds: float, asm: dict, recipe) -> Path:
    summaries = {p.name: json.loads((p / "summary.json").read_text())
                 for p in (out / n for n in ("tough", "tolerant", "baseline", "student"))}
    runs = "\n".join(f"| {name} | {s['epochs_completed']} | {s['steps']} | {s['seconds']} |"
                     for name, s in summaries.items())
    text = f"""# kdlandmarks demo report

The whole KD-Loss method (Fard & Mahoor, CVIU 2022) at toy scale on the faces bundled with the
package: {recipe.input_size} px input, {recipe.copies} stored copies per face, 24 training faces.
**Toy scale: these numbers only show that every stage runs.** The shipped models' rows (two students,
two teachers) are the models trained on 2012 faces (see the README for their full evaluation).

- Soft-landmarks: the ASM kept {asm['n_components']} principal components at {recipe.asm_variance:.0%} variance;
  mean hard-to-soft distance {asm['mean_distance_nme']:.2f}% (NME units).

| run | epochs | steps | seconds |
|---|---|---|---|
{runs}

## Evaluation: 12 bundled LFPW test faces, ground-truth crop, inter-ocular NME

{table}
![CED](comparison/ced.png)

## The shipped student on a bundled photo

![landmarks]({picture.name})

Total time: {seconds:.0f} s. Data: 300-W (LFPW, HELEN, AFW images; iBUG annotations), non-commercial
research use only; cite Sagonas et al., ICCV-W 2013.
"""
    return atomic_write_text(out / "report.md", text).resolve()
