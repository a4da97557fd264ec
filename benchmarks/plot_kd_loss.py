"""Plot KD-Loss terms and assistant weights for one coordinate, released-code vs figure variant, to a PNG.

Usage: python3 benchmarks/plot_kd_loss.py out.png [--tough -0.04] [--tolerant 0.08]

Rows: released code and figure variant (docs/method.md#kd-total, #figure-variant) with g = 0 and the given teachers over p in
[-0.2, 0.2]; a third row puts the figure variant in the setup of the paper's figure ``KDLoss`` (left panel:
teachers at 0.4 and 0.49, p in [-0.5, 0.5]) for a side-by-side check.
"""
from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from kdlandmarks.fileio import atomic_path  # noqa: E402
from kdlandmarks.models.losses import KDLoss, assistant_weight  # noqa: E402


def curves(loss: KDLoss, tough: float, tolerant: float, lo: float, hi: float, n: int = 2001):
    p = torch.linspace(lo, hi, n, dtype=torch.float64).reshape(n, 1)
    g = torch.zeros_like(p)
    a = torch.full_like(p, tough)
    s = torch.full_like(p, tolerant)
    terms = {k: v.reshape(-1) for k, v in loss.elementwise(p, g, a, s).items()}
    terms["total"] = terms["main"] + terms["tough"] + terms["tolerant"]
    weights = {
        "w_tough": assistant_weight(p, g, a, alpha=loss.alpha_tough, alpha_minus=loss.alpha_minus_tough,
                                    beta_ratio=loss.beta_ratio, rl_ramp=loss.rl_ramp).reshape(-1),
        "w_tolerant": assistant_weight(p, g, s, alpha=loss.alpha_tolerant, alpha_minus=loss.alpha_minus_tolerant,
                                       beta_ratio=loss.beta_ratio, rl_ramp=loss.rl_ramp).reshape(-1),
    }
    return p.reshape(-1).numpy(), {k: v.numpy() for k, v in terms.items()}, {k: v.numpy() for k, v in weights.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", help="PNG file to write")
    ap.add_argument("--tough", type=float, default=-0.04, help="Tough-Teacher coordinate (g = 0)")
    ap.add_argument("--tolerant", type=float, default=0.08, help="Tolerant-Teacher coordinate (g = 0)")
    args = ap.parse_args(argv)

    rows = [
        ("released code", KDLoss(), args.tough, args.tolerant, -0.2, 0.2),
        ("figure variant", KDLoss.figure_variant(), args.tough, args.tolerant, -0.2, 0.2),
        ("figure variant, figure KDLoss setup", KDLoss.figure_variant(), 0.4, 0.49, -0.5, 0.5),
    ]
    fig, axes = plt.subplots(len(rows), 2, figsize=(12, 4.2 * len(rows)))
    colors = {"main": "tab:blue", "tough": "seagreen", "tolerant": "yellowgreen", "total": "tab:red",
              "w_tough": "seagreen", "w_tolerant": "yellowgreen"}
    for (title, loss, a, s, lo, hi), (ax_l, ax_w) in zip(rows, axes):
        x, terms, weights = curves(loss, a, s, lo, hi)
        for k, v in terms.items():
            ax_l.plot(x, v, color=colors[k], lw=2.5 if k == "total" else 1.8, label=k)
        for k, v in weights.items():
            ax_w.plot(x, v, color=colors[k], lw=1.8, label=k)
        for ax in (ax_l, ax_w):
            ax.axhline(0, color="gray", lw=0.6)
            ax.plot([0], [0], "ko", label="g")
            ax.plot([a], [0], "o", color="orchid", label="tough a")
            ax.plot([s], [0], "o", color="indigo", label="tolerant s")
            for t, c in ((a, "seagreen"), (s, "yellowgreen")):
                b = loss.beta_ratio * abs(t)
                ax.plot([b, -b], [0, 0], "x", color=c)
            ax.grid(True, ls=":")
            ax.legend(fontsize=7, ncol=2)
        ax_l.set_title(f"{title}: loss terms (lambda applied)")
        ax_w.set_title(f"{title}: assistant weights")
        ax_l.set_xlabel("p")
        ax_w.set_xlabel("p")
    fig.tight_layout()

    with atomic_path(args.output) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
