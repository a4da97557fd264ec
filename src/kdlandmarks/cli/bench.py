"""`kdlandmarks bench`: the per-face pipeline, the networks and the peers, timed on this machine."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="measure landmark and detector speed on this machine",
                              description="Latency (median ms per face) of the whole pipeline users run (a face "
                                          "with a given box on real photos, on a 0.4 MP and a 12 MP photo), next to "
                                          "dlib and MediaPipe Face Mesh when installed; and of the networks alone: "
                                          "the student and teacher in torch and onnxruntime (fp32, int8), the "
                                          "student with flip test, and the face detector.")
    p.add_argument("--model", default=None, help="student model name or file (default: the shipped default student)")
    p.add_argument("--teacher-arch", default="resnet18",
                   help="teacher backbone, random weights (default resnet18, the shipped teachers'; 'none' skips it)")
    p.add_argument("--input-size", type=_ints, default=None,
                   help="input sizes, comma-separated (default: the student's size and 224)")
    p.add_argument("--batch", type=_ints, default=[1, 32], help="batch sizes, comma-separated (default 1,32)")
    p.add_argument("--repeats", type=int, default=100,
                   help="timed repeats per row after warm-up, capped at about 5 s per row (default 100)")
    p.add_argument("--min-seconds", type=float, default=2.0,
                   help="keep timing each fast row for at least this long, so that a burst of other load on a "
                        "shared machine does not set the median (default 2)")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads for torch and onnxruntime (default: the libraries' choice)")
    p.add_argument("--photos", default=None,
                   help="folder of .jpg + .pts faces for the pipeline and peer rows (default: LFPW test when "
                        "$KDLANDMARKS_300W points at a 300-W copy, else the bundled sample)")
    p.add_argument("--max-photos", type=int, default=50, help="photos used from that folder (default 50)")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 student")
    p.add_argument("--no-flip-test", action="store_true",
                   help="skip the student-with-flip-test rows (face and mirror in one batch, per face)")
    p.add_argument("--no-pipeline", action="store_true", help="skip the per-face pipeline rows")
    p.add_argument("--no-detector", action="store_true", help="skip the face detector")
    p.add_argument("--no-others", action="store_true", help="skip dlib, MediaPipe and face_alignment")
    p.set_defaults(func=run)


def bench_options(args: argparse.Namespace) -> Any:
    """The BenchOptions of parsed `kdlandmarks bench` arguments; ConfigError for values out of range."""
    from kdlandmarks.apps.bench import BenchOptions
    from kdlandmarks.errors import ConfigError

    if args.repeats < 1 or (args.threads is not None and args.threads < 1) or args.max_photos < 1:
        raise ConfigError("--repeats, --threads and --max-photos must be at least 1")
    if not args.min_seconds >= 0:
        raise ConfigError(f"--min-seconds must be 0 or more, got {args.min_seconds}")
    return BenchOptions(model=args.model, teacher_arch=args.teacher_arch, input_sizes=args.input_size,
                        batches=tuple(args.batch), repeats=args.repeats, threads=args.threads,
                        min_seconds=args.min_seconds,
                        photos=args.photos, max_photos=args.max_photos, int8=not args.no_int8,
                        flip_test=not args.no_flip_test, pipeline=not args.no_pipeline,
                        detector=not args.no_detector, others=not args.no_others)


def run(args: argparse.Namespace) -> int:
    import sys

    from kdlandmarks.apps.bench import format_report, run_bench
    from kdlandmarks.errors import DataError

    options = bench_options(args)
    if options.photos is not None and not Path(options.photos).is_dir():
        raise DataError(f"{options.photos}: photos folder not found")
    report = run_bench(options, progress=lambda msg: print(f"... {msg}", file=sys.stderr, flush=True))
    print(format_report(report))
    return 0
