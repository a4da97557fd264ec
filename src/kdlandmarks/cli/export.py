"""`kdlandmarks export`: write a model as ONNX (fp32 or int8) and print its parity with torch on real faces."""
from __future__ import annotations

import argparse

from kdlandmarks.models.zoo import DEFAULT_MODEL

FORMATS = ("onnx", "onnx-int8")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a model to ONNX (fp32 or int8) with a parity check",
                              description="Export a landmark model to ONNX: input 'images' (B,3,S,S) RGB in [0,1], "
                                          "output 'landmarks' (B,2N); the model's settings travel as metadata.")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"shipped model name (kdlandmarks models) or a model file (default: {DEFAULT_MODEL})")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (fp32) or onnx-int8 (static QDQ)")
    p.add_argument("--out", required=True, help="output .onnx file (written atomically), and its runtime "
                                                "description <name>.json beside it; neither replaces the model "
                                                "itself or a file kdlandmarks did not write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension to 1")
    p.add_argument("--check-faces", type=int, default=8, help="real faces for the parity check (default 8)")
    p.add_argument("--calibration-faces", type=int, default=32,
                   help="real faces to calibrate int8 activations on (default 32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kdlandmarks.errors import ConfigError
    from kdlandmarks.extras import require_train

    require_train("kdlandmarks export", ("torch", "timm", "onnx"))
    from kdlandmarks.export.onnx import check_export_target, export_onnx, export_onnx_int8, format_parity
    from kdlandmarks.export.modelspec import spec_path, write_model_spec

    if args.check_faces < 1 or args.calibration_faces < 1:
        raise ConfigError("--check-faces and --calibration-faces must be at least 1")
    # before the work: never onto the model itself, nor onto a .json beside it that is not ours
    out = check_export_target(args.model, Path(args.out), sidecar=spec_path(args.out))
    if args.format == "onnx":
        report = export_onnx(args.model, out, opset=args.opset, dynamic_batch=not args.static_batch,
                             check_count=args.check_faces)
        print(f"wrote {out} ({report['bytes'] / 1e6:.1f} MB, {report['arch']}, {report['num_points']} points, "
              f"input {report['input_size']} px, opset {report['opset']})")
        print(f"wrote {write_model_spec(out)} (runtime description: crop, calibrations, detector; read by web/)")
        print(format_parity(report, "parity onnx vs torch"))
        return 0
    result = export_onnx_int8(args.model, out, opset=args.opset, dynamic_batch=not args.static_batch,
                              check_faces=args.check_faces, calibration_faces=args.calibration_faces)
    report, q = result["fp32"], result["int8"]
    print(f"wrote {out} ({q['bytes'] / 1e6:.1f} MB int8, fp32 {report['bytes'] / 1e6:.1f} MB, {report['arch']}, "
          f"{report['num_points']} points, input {report['input_size']} px, opset {report['opset']})")
    print(f"wrote {write_model_spec(out)} (runtime description: crop, calibrations, detector; read by web/)")
    print(format_parity(report, "parity onnx fp32 vs torch"))
    print(format_parity(q, f"parity int8 vs fp32 ({result['calibration_faces']} calibration faces)"))
    if "nme_fp32" in q:
        print(f"NME (inter-ocular) on these faces: fp32 {100 * q['nme_fp32']:.2f}%, int8 {100 * q['nme_int8']:.2f}%")
    return 0
