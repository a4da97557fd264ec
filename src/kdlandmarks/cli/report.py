"""`kdlandmarks report`: compare several evaluations in one table and one CED plot."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="compare evaluations: Markdown table, CED plot and CSV",
                              description="Compare metrics.json files written by `kdlandmarks evaluate`.")
    p.add_argument("--eval", action="append", required=True, metavar="LABEL=DIR",
                   help="an evaluation folder (or metrics.json) with its label; repeat for each model")
    p.add_argument("--out", required=True, help="folder for table.md, ced.png, ced.csv")
    p.add_argument("--subset", help="subset to compare (default: each evaluation's first)")
    p.add_argument("--title", default="CED")
    p.add_argument("--baseline", metavar="LABEL",
                   help="pair every other model with this one face by face: mean NME difference with a "
                        "bootstrap 95 %% interval, faces won, paired p-value")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdlandmarks.errors import ConfigError
    from kdlandmarks.evaluation.report import compare

    evaluations = {}
    for item in args.eval:
        if "=" not in item:
            raise ConfigError(f"--eval {item!r} must look like LABEL=DIR")
        label, path = item.split("=", 1)
        if label in evaluations:
            raise ConfigError(f"--eval label {label!r} given twice; each evaluation needs its own label")
        evaluations[label] = path
    from kdlandmarks.evaluation.plots import matplotlib_missing

    print(compare(evaluations, args.out, subset=args.subset, title=args.title, baseline=args.baseline), end="")
    why_not = matplotlib_missing()
    print(f"written: {args.out}/table.md, {'ced.png, ' if why_not is None else ''}ced.csv")
    if why_not is not None:
        print(f"note: ced.png not drawn: {why_not}")
    return 0
