"""`kdlandmarks bench`: per-face latency and throughput of student, teacher and detector on this machine."""
from __future__ import annotations

import argparse


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
                              description="Latency (median ms per face) and throughput of the student and teacher "
                                          "in torch and onnxruntime (fp32, int8), the student with flip test "
                                          "(onnxruntime fp32, int8), the face detector, and other "
                                          "landmark libraries when installed.")
    p.add_argument("--model", default=None,
                   help="student model name or file (default: the shipped student, else a fresh MobileNetV2)")
    p.add_argument("--teacher-arch", default="efficientnet_b3",
                   help="teacher backbone, random weights (default efficientnet_b3; 'none' skips it)")
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
    p.add_argument("--no-int8", action="store_true", help="skip the int8 student")
    p.add_argument("--no-flip-test", action="store_true",
                   help="skip the student-with-flip-test rows (face and mirror in one batch, per face)")
    p.add_argument("--no-detector", action="store_true", help="skip the face detector and other libraries")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from kdlandmarks.apps.bench import format_report, run_bench
    from kdlandmarks.errors import ConfigError

    if args.repeats < 1 or (args.threads is not None and args.threads < 1):
        raise ConfigError("--repeats and --threads must be at least 1")
    if not args.min_seconds >= 0:
        raise ConfigError(f"--min-seconds must be 0 or more, got {args.min_seconds}")
    report = run_bench(args.model, args.teacher_arch, args.input_size, args.batch, args.repeats, args.threads,
                       int8=not args.no_int8, detector=not args.no_detector, others=not args.no_detector,
                       progress=lambda msg: print(f"... {msg}", file=sys.stderr, flush=True),
                       min_seconds=args.min_seconds, flip_test=not args.no_flip_test)
    print(format_report(report))
    return 0
