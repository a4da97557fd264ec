"""`kdlandmarks evaluate`: metrics of a model on a dataset split, with CED plot and predicted .pts files."""
from __future__ import annotations

import argparse

DATASET_CHOICES = ("300w", "cofw", "wflw", "folder")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="evaluate a model on a dataset split (NME, failure rate, AUC, CED)",
        description="Evaluate a shipped model, model file, training checkpoint or exported .onnx on one dataset "
                    "split. Writes metrics.json, ced.csv, ced.png (needs matplotlib) and pts/<face>.pts "
                    "(predictions in original image coordinates) to --out.")
    p.add_argument("--model", required=True,
                   help="shipped model name (runs on onnxruntime), exported .onnx, or model file (.pt) / Lightning "
                        "checkpoint (.ckpt), which need the training extra")
    p.add_argument("--dataset", required=True, choices=DATASET_CHOICES)
    p.add_argument("--root", required=True, help="dataset root folder (original layout)")
    p.add_argument("--split", required=True,
                   help="split name, e.g. 300-W full/common/challenging or a sub-folder such as lfpw/testset")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--protocol", default="gt", choices=("gt", "box", "detector"),
                   help="crop: gt = ground-truth landmark extent + margin (the paper's protocol); "
                        "box = the dataset's face box; detector = end to end: the face detector's box through "
                        "its calibration, as predict does; a face it misses is a failure scored NME 1.0 and "
                        "counted under 'misses' (default: gt)")
    p.add_argument("--detector", default="retinaface",
                   help="face detector for --protocol detector (default: retinaface, the shipped one)")
    p.add_argument("--backend", choices=("torch", "onnx"), default=None,
                   help="default: onnx for shipped names and .onnx files, torch for .pt/.ckpt")
    p.add_argument("--normalizer", default="inter-ocular", choices=("inter-ocular", "inter-pupil", "box"))
    p.add_argument("--threshold", type=float, default=0.1, help="failure / AUC threshold on NME (default 0.1)")
    p.add_argument("--scheme", default=None, help="landmark scheme name or file (dataset 'folder')")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable faces (listed in metrics.json) instead of stopping")
    p.add_argument("--flip-test", action="store_true",
                   help="average each face's prediction with the un-mirrored prediction on its mirrored crop "
                        "(one more network pass per face; needs a scheme with flip pairs; recorded in metrics.json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdlandmarks.evaluation.protocols import EvaluationOptions, evaluate_model

    options = EvaluationOptions(protocol=args.protocol, normalizer=args.normalizer, threshold=args.threshold,
                                flip_test=args.flip_test, detector=args.detector, scheme=args.scheme,
                                skip_bad=args.skip_bad, batch_size=args.batch_size, device=args.device,
                                backend=args.backend)
    report = evaluate_model(args.model, args.dataset, args.root, args.split, args.out, options)
    print(format_table(report))
    for line in report["skipped"]:  # --skip-bad: each bad face by name, as prepare lists them
        print(f"skipped: {line}")
    return 0


def format_table(report: dict) -> str:
    proto = report["protocol"]
    detector = proto["crop"] == "detector"
    rows = [("subset", "count", "NME %", "FR %", "AUC", "AUC(paper code)")
            + (("misses", "NME found %") if detector else ())]
    for name, s in report["subsets"].items():
        row = (name, str(s["count"]), f"{s['nme']:.3f}", f"{s['failure_rate']:.2f}", f"{s['auc']:.4f}",
               f"{s['auc_paper_code']:.4f}")
        if detector:
            found = s.get("nme_detected")
            row += (str(s["misses"]), "-" if found is None else f"{found:.3f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    t = proto["threshold"]
    lines.append(
        f"protocol: crop={proto['crop']} (margin {proto['crop_margin']:g}, input {proto['input_size']}px), "
        f"normalizer={proto['normalizer']} ({proto['normalizer_points']}), FR: NME > {t:g}, "
        f"AUC: exact over [0, {t:g}], AUC(paper code): 20 thresholds in [0, {t:g}] (max {9.5 * t:.3g})")
    if detector:
        lines.append(f"detector: {proto['detector']} (crop through its calibration); {proto['misses']} of "
                     f"{proto['count']} faces missed; {proto['miss_rule']}")
    if proto.get("flip_test"):
        lines.append("flip test: on (each face averaged with its mirrored crop; report apart from single-pass scores)")
    for note in proto.get("notes", []):
        lines.append(f"note: {note}")
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} bad face(s); listed in metrics.json")
    return "\n".join(lines)
