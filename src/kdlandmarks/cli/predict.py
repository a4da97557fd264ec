"""`kdlandmarks predict`: landmarks for the faces in image files, folders of images and video files.

Argument parsing and printing only; the work is kdlandmarks.apps.predict.predict_paths."""
from __future__ import annotations

import argparse
import sys

from kdlandmarks.apps.predict import OUTPUT_LEDGER, VIDEO_SUFFIXES, collect_inputs, parse_boxes, parse_formats  # noqa: F401 (re-exported)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="predict landmarks on images, folders and videos",
        description="Find faces and predict their landmarks. Images: writes <stem>.json (faces with box, score, "
                    "landmarks in image pixels) and/or <stem>_<face>.pts, and with --draw <stem>_landmarks.jpg. "
                    "Folders are searched recursively for images; their layout is kept under --out. Videos "
                    f"({', '.join(VIDEO_SUFFIXES)}): writes <stem>.jsonl (one line per frame, faces with track ids) "
                    "and with --draw <stem>_landmarks.mp4. Bad files are reported and skipped; the exit "
                    "status is 0 when at least one input was processed. Only files that predict can tell "
                    f"it wrote (listed in --out's {OUTPUT_LEDGER}, unchanged since) are replaced or "
                    "removed: a re-run replaces each image's outputs and removes its own stale .json/.pts, "
                    "while a file of yours in the way is left as it is and the output goes beside it "
                    "(a-1.json). Inputs are never overwritten; earlier drawings are not read as inputs "
                    "(the summary counts them).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders of images, or video files")
    p.add_argument("--model", default=None, help="shipped model name, model file (.pt/.ckpt) or exported .onnx "
                                                  "(default: the shipped 300-W student)")
    p.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    p.add_argument("--format", default="json", help="comma-separated output formats for images: json, pts (default json)")
    p.add_argument("--draw", action="store_true", help="also write pictures (videos) with the landmarks drawn")
    p.add_argument("--backend", choices=("torch", "onnx"), default=None, help="default: from the model file type")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--detector", default="auto",
                   help="face detector: auto (best installed), retinaface (shipped), dlib or mediapipe / "
                        "mediapipe-full (optional packages: a missing one is named in the error), or "
                        "module:callable (default auto)")
    p.add_argument("--boxes", default=None,
                   help="face boxes instead of a detector: 'x0,y0,x1,y1[;x0,y0,x1,y1...]' for every image/frame, "
                        "or a .json file mapping image file names to [[x0,y0,x1,y1], ...] (others are detected); "
                        "boxes are cropped like RetinaFace boxes (or those of a named --detector) unless "
                        "--box-source names their convention")
    p.add_argument("--box-source", default=None, metavar="NAME",
                   help="convention of the --boxes, i.e. which detector drew them: retinaface, haar, dlib, "
                        "mediapipe, mediapipe-full, or landmarks (a tight box around the 68 landmarks); "
                        "default retinaface (or --detector's when named)")
    p.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True,
                   help="video: smooth each tracked face's landmarks over time with a One-Euro filter (default "
                        "on; faces are tracked either way)")
    p.add_argument("--batch-size", type=int, default=16, help="images or frames per network batch (default 16)")
    p.add_argument("--max-megapixels", type=float, default=50.0,
                   help="refuse (skip) images, and videos whose frames are, larger than this, checked from the "
                        "file header before decoding; "
                        "bounds memory (default 50; 0: no limit; a positive number otherwise)")
    p.add_argument("--flip-test", action="store_true",
                   help="average each face's prediction with the un-mirrored prediction on its mirrored crop: "
                        "a little more accurate, one more network pass per face (both views in one batch); "
                        "needs a landmark scheme with flip pairs; composes with video tracking and --smooth")
    p.set_defaults(func=run)


def _report_skip(exc: Exception) -> None:
    from tqdm import tqdm

    from kdlandmarks.cli import cli_message

    tqdm.write(f"kdlandmarks: skipped {cli_message(exc)}", file=sys.stderr)  # above a running progress bar


def run(args: argparse.Namespace) -> int:
    from kdlandmarks.apps.predict import LoadOptions, RunOptions, predict_paths

    options = RunOptions(formats=args.format, draw=args.draw, boxes=args.boxes, box_source=args.box_source,
                         smoothing=args.smooth, batch_size=args.batch_size, max_megapixels=args.max_megapixels)
    load = LoadOptions(model=args.model, device=args.device, backend=args.backend, face_detector=args.detector,
                       flip_test=args.flip_test)
    summary = predict_paths(args.paths, args.out, options, load=load, on_skip=_report_skip)
    print(summary.describe())
    return 0
