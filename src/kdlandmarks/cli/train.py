"""`kdlandmarks train teacher|student`: train a Tough/Tolerant teacher or a student from a recipe."""
from __future__ import annotations

import argparse


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="300w-cpu", help="shipped recipe name (300w-cpu, 300w-paper, ...) or YAML file")
    p.add_argument("--store", help="training store (kdlandmarks prepare); overrides data.store")
    p.add_argument("--out", required=True, help="run folder: checkpoints, logs, config.yaml, model.pt")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set student.epochs=5 (repeatable)")
    p.add_argument("--init", metavar="MODEL", help="start from this model's weights (fine-tuning): a model file, "
                                                   ".ckpt, run folder or shipped name of the same architecture")
    p.add_argument("--restart", action="store_true", help="ignore an existing last.ckpt instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a teacher or a student",
                              description="Train one model from a recipe; resumes from OUT/checkpoints/last.ckpt.")
    roles = p.add_subparsers(dest="role", metavar="ROLE", required=True)
    t = roles.add_parser("teacher", help="train the Tough (hard-landmarks) or Tolerant (soft-landmarks) teacher")
    t.add_argument("--kind", required=True, choices=["tough", "tolerant"])
    _common(t)
    t.set_defaults(func=run)
    s = roles.add_parser("student", help="train the student with L2/L1 (baseline) or KD-Loss")
    s.add_argument("--loss", choices=["l2", "l1", "smooth_l1", "wing", "kd"],
                   help="default: the recipe's loss for the role (teachers: l2, students: kd)")
    s.add_argument("--tough", help="Tough-Teacher (KD): a shipped teacher (kd-teacher-300w-tough), a model file or a run folder")
    s.add_argument("--tolerant", help="Tolerant-Teacher (KD): a shipped teacher (kd-teacher-300w-tolerant), a model file or a run "
                        "folder")
    s.add_argument("--online-teachers", action="store_true",
                   help="run the teachers every step instead of caching their outputs (allows online augmentation)")
    _common(s)
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdlandmarks.extras import require_train

    require_train(f"kdlandmarks train {args.role}", ("torch", "timm", "lightning"))
    from kdlandmarks.training.config import load_recipe
    from kdlandmarks.training.run import Teachers, train_model

    overrides = list(args.set)
    if args.store:
        overrides.append(f"data.store={args.store}")
    if args.init:
        overrides.append(f"{args.role}.init_weights={args.init}")
    recipe = load_recipe(args.config, overrides)
    teachers = Teachers(tough=getattr(args, "tough", None), tolerant=getattr(args, "tolerant", None),
                        online=getattr(args, "online_teachers", False))
    summary = train_model(recipe, args.role, args.out, kind=getattr(args, "kind", None),
                          loss=getattr(args, "loss", None), teachers=teachers, restart=args.restart,
                          progress=not args.quiet)
    if "model" in summary:
        print(f"{args.role} ({summary['kind'] or summary['loss']}): {summary['epochs_completed']} epochs, "
              f"{summary['steps']} steps in {summary['seconds']} s ({summary['samples_per_second']} samples/s); "
              f"val NME {summary['last_val_nme']}; model -> {summary['model']}")
    return 0
