"""Batch-1 onnxruntime latency of every shipped student, measured in interleaved rounds.

On a shared machine other tenants' load comes in bursts; timing the models one after another lets a
burst land on one of them. Here each round times every model in turn (after a short warm-up), and
the figure per model is the median over rounds of each round's median. Session options are the
package's own (inference.runtime.session_options), input 128 px random data (speed does not depend on it).
Usage: python3 benchmarks/shipped_latency_interleaved.py [--rounds 8] [--calls 150]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from kdlandmarks.export.onnx import OnnxRegressor
from kdlandmarks.models.zoo import resolve_model, shipped_names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--calls", type=int, default=150, help="timed calls per model per round")
    args = ap.parse_args()
    runners = {name: OnnxRegressor(resolve_model(name, backend="onnx")) for name in shipped_names()}
    medians: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            x = np.random.default_rng(0).random((1, 3, run.input_size, run.input_size), dtype=np.float32)
            for _ in range(20):
                run(x)
            times = []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                run(x)
                times.append(time.perf_counter() - t0)
            medians[name].append(float(np.median(times)) * 1e3)
    print(f"{args.rounds} rounds x {args.calls} calls, batch 1, onnxruntime fp32 (ms per face)")
    for name, values in medians.items():
        print(f"{name:24s} median of round medians {np.median(values):.2f}  "
              f"(round medians {min(values):.2f} .. {max(values):.2f})")


if __name__ == "__main__":
    main()
