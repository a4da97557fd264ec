"""`kdlandmarks models`: the shipped models, one line each, or one model's card."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list the shipped models, or print one model's card",
                              description="List the models shipped with the package (usable by name with "
                                          "--model everywhere), or print one model's card.")
    p.add_argument("name", nargs="?", default=None, help="a shipped model's name: print its card")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdlandmarks.models.zoo import DEFAULT_MODEL, is_installed, model_card, model_summary, shipped_names

    if args.name is not None:
        print(model_card(args.name).read_text(encoding="utf-8"), end="")
        return 0
    width = max(len(n) for n in shipped_names())
    for name in shipped_names():
        mark = " (default)" if name == DEFAULT_MODEL else ""
        if not is_installed(name):
            mark += " (not in this installation: in the source checkout)"
        print(f"{name.ljust(width)}  {model_summary(name)}{mark}")
    return 0
