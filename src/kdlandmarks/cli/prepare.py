"""`kdlandmarks prepare`: decode, crop and store a dataset split once for fast training."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("prepare", help="build a prepared-data store from a dataset in its original format",
                              description="Decode, crop and save faces once, memory-mapped for training.")
    p.add_argument("--dataset", required=True, choices=["300w", "cofw", "wflw", "folder"])
    p.add_argument("--root", required=True, help="dataset folder (or the .mat file for COFW)")
    p.add_argument("--split", default="train", help="split name or sub-folder (default: train)")
    p.add_argument("--out", help="store folder (default: stores/<dataset>-<split>-<size>)")
    p.add_argument("--config", help="take --size/--context/--margin/--copies from a training recipe (e.g. 300w-cpu)")
    p.add_argument("--size", type=int, help="network input size the store is made for (default 128; paper: 224)")
    p.add_argument("--context", type=float, help="stored crop side / input crop side, room to rotate (default 1.25)")
    p.add_argument("--margin", type=float, help="crop margin around the landmark extent, per side (default 0.1)")
    p.add_argument("--copies", type=int,
                   help="augmentation factor: stored copies per face, 1 plain + F-1 augmented (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scheme", help="landmark scheme for --dataset folder (built-in name or YAML file)")
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    p.add_argument("--skip-bad", action="store_true", help="skip and count bad faces instead of stopping")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdlandmarks.data.store import PrepareParams, prepare_store

    # Given options win, then the --config recipe's values, then PrepareParams' defaults (and its checks).
    recipe = None
    if args.config:
        from kdlandmarks.training.config import load_recipe

        recipe = load_recipe(args.config)
    params = PrepareParams.build(args.dataset, args.root, args.split, recipe=recipe, input_size=args.size,
                                 context=args.context, margin=args.margin, copies=args.copies, seed=args.seed,
                                 scheme=args.scheme)
    if params.copies > 1:  # augmented copies are made with torch
        from kdlandmarks.extras import require_train

        require_train(f"kdlandmarks prepare --copies {params.copies} (augmented copies)", ("torch",))
    out = args.out or f"stores/{args.dataset}-{args.split.replace('/', '-')}-{params.input_size}"
    summary = prepare_store(params, out, workers=args.workers, skip_bad=args.skip_bad, progress=not args.quiet)
    verb = "is up to date" if summary["status"] == "up to date" else "built"
    print(f"store {summary['path']} {verb}: {summary['faces']} faces, {summary['samples']} samples "
          f"({params.copies} per face) in {summary['seconds']:.1f} s")
    for line in summary["skipped"]:
        print(f"skipped: {line}")
    if summary["skipped"]:
        print(f"{len(summary['skipped'])} bad face(s) skipped")
    return 0
