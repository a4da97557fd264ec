"""`kdlandmarks demo`: run the whole method at toy scale on the bundled faces and write a report."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the whole method at toy scale on the bundled faces, with a report",
                              description="Soft-landmarks, both teachers, baseline and KD student on the bundled "
                                          "faces, evaluation, and the shipped student on a photo.")
    p.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the demo recipe, e.g. --set teacher.epochs=2")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdlandmarks.extras import require_train

    require_train("kdlandmarks demo (it trains)", ("torch", "timm", "lightning", "matplotlib"))
    from kdlandmarks.apps.demo import run_demo

    report = run_demo(args.out, overrides=args.set, progress=not args.quiet)
    print(f"report: {report}")
    return 0
