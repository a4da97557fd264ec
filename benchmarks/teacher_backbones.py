"""Training speed of candidate teacher backbones on this CPU: samples per second of a full training step.

Each timm backbone gets a 2N-output regression head (68 points), AdamW and an L1 loss on random 128 px
inputs in channels-last, batch 32; the figure is samples/s over ~12 s after two warm-up steps. Run it on
an idle machine (training runs beside it would take its cores):
    python3 benchmarks/teacher_backbones.py --threads 2 efficientnet_b3 resnet18 mobilenetv2_100
"""
from __future__ import annotations

import argparse
import time

import timm
import torch


def samples_per_second(name: str, batch: int, size: int, seconds: float) -> tuple[float, float]:
    """(parameters in millions, training samples per second) for one backbone."""
    model = timm.create_model(name, pretrained=False, num_classes=136).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
    y = torch.randn(batch, 136)

    def step() -> None:
        opt.zero_grad()
        (model(x) - y).abs().mean().backward()
        opt.step()

    step(), step()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        n += batch
    return sum(p.numel() for p in model.parameters()) / 1e6, n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", nargs="+", help="timm backbone names")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, {args.size} px")
    for name in args.arch:
        params, rate = samples_per_second(name, args.batch, args.size, args.seconds)
        print(f"{name:20s} params {params:5.1f}M  {rate:6.1f} samples/s", flush=True)


if __name__ == "__main__":
    main()
