"""Frames per second on a 720p clip with one moving face, decode included: OpenCV decode alone,
LandmarkDetector.detect_video (tracking + smoothing, the default model) and MediaPipe Face Mesh in
tracking mode, in the same run (apps/video_bench.bench_video: the clip is made on the fly).

MediaPipe 0.10.x needs numpy < 2, so run this from a peers' venv that has both it and this project:

    python3 -m venv ~/peers-venv
    ~/peers-venv/bin/pip install 'mediapipe==0.10.14' 'numpy<2' -e .        # the light install
    ~/peers-venv/bin/python benchmarks/video_fps.py

Without MediaPipe the script says so in its row and measures the rest.
"""
from __future__ import annotations

import argparse

from kdlandmarks.apps.video_bench import bench_video, format_video_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="default: the shipped default model")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs per row")
    args = ap.parse_args()
    size = (args.width, args.height)
    print(format_video_rows(bench_video(args.model, args.frames, size, args.repeats), size))


if __name__ == "__main__":
    main()
