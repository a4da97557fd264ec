"""`kdlandmarks asm`: fit the Active Shape Model on a store and write its soft-landmarks beside the hard ones."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("asm", help="fit the ASM (PCA) on a store and write soft-landmarks",
                              description="Soft-landmarks: projection on the kept principal components, "
                                          "coefficients clamped to +-3 sqrt(eigenvalue).")
    p.add_argument("--store", required=True, help="prepared store (kdlandmarks prepare)")
    p.add_argument("--variance", type=float, default=0.95,
                   help="cumulative explained variance to keep (paper candidates: 0.90, 0.95)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdlandmarks.training.asm import fit_store_asm

    result = fit_store_asm(args.store, args.variance)
    print(f"ASM on {result['samples']} shapes ({result['num_points']} points): variance {args.variance:.2f} keeps "
          f"{result['n_components']} components; mean hard-to-soft distance {result['mean_distance_nme']:.3f} "
          f"(NME %, inter-ocular); soft-landmarks written to {args.store}")
    return 0
