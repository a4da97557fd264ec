"""ONNX export of a landmark model and its int8 quantisation (both need the `train` extra: torch, onnx).

The exported graph keeps the network's contract: input ``images`` float32 (B, 3, S, S), RGB in [0, 1];
output ``landmarks`` (B, 2N) in the model's coordinate space (normalised by default, see codec.py).
The model's ModelInfo travels as JSON in ``metadata_props["kdlandmarks"]``, so an .onnx file alone
is enough to crop, run and decode. Running it (OnnxRegressor) and turning crops into its input
(to_batch) live in runtime.py, which imports neither torch nor onnx; they are re-exported here.

Exporter choice (torch 2.x): the TorchScript exporter (``dynamo=False``) is used. It needs no extra
package, is much faster than the dynamo exporter, honours opset 17 (the dynamo exporter emits opset 18
and its down-conversion to 17 fails on this graph), and folds BatchNorm into the convolutions in eval
mode; every export reports its parity with torch. The dynamo exporter (needs ``onnxscript``) stays
available as ``exporter="dynamo"`` for when the legacy one is removed.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from kdlandmarks.errors import ConfigError, ModelError
from kdlandmarks.extras import require_train
from kdlandmarks.fileio import atomic_path, check_writable
from kdlandmarks.models.info import ModelInfo
# The runner and the crop-to-input step, here for the callers that import them from export.
from kdlandmarks.inference.runtime import (INPUT_NAME, METADATA_KEY, OUTPUT_NAME, QUANT_KEY, OnnxRegressor,  # noqa: F401
                      session_options, to_batch)
# Real face crops for parity checks and int8 calibration; here for the callers that import it from export.
from kdlandmarks.data.sample_faces import face_crops  # noqa: F401

DEFAULT_OPSET = 17
MIN_OPSET, MAX_TORCHSCRIPT_OPSET = 7, 20  # torch.onnx's TorchScript exporter (torch 2.x)


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------

def check_export_target(model: Any, out: str | Path, sidecar: str | Path | None = None) -> Path:
    """`out` as a Path when an export of `model` (a name, a path or an in-memory pair) may be written there;
    else one error, before any work: `out` must be a .onnx file that is not the model itself, in a folder
    that takes files, and `sidecar` (a file written beside it, e.g. modelspec.spec_path(out)) must be
    absent or a model description that kdlandmarks wrote, never a user's file."""
    from kdlandmarks.export.modelspec import read_model_spec

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"{out}: an ONNX export is written to a file ending in .onnx")
    if not isinstance(model, tuple):
        from kdlandmarks.models.zoo import resolve_model

        source = resolve_model(model)
        if out.resolve() == source.resolve() or (sidecar is not None and Path(sidecar).resolve() == source.resolve()):
            raise ConfigError(f"{out}: this would overwrite the model being exported ({source}); choose another file")
    if sidecar is not None and os.path.lexists(sidecar):
        try:
            read_model_spec(sidecar)
        except ModelError:
            raise ConfigError(f"{sidecar}: a file that kdlandmarks did not write is where the model description "
                              f"of {out.name} goes; it was left as it was: move it or choose another .onnx "
                              "name") from None
    return check_writable(out)


def resolve_network(model: Any) -> tuple[Any, ModelInfo, str]:
    """A model name/path or an in-memory (model, info) pair -> (eval model, info, label)."""
    if isinstance(model, tuple):
        net, info = model
        return net.eval(), info, f"in-memory {info.arch}"
    from kdlandmarks.models.backbones import load_model
    from kdlandmarks.models.zoo import resolve_model

    path = resolve_model(model)
    net, info = load_model(path)
    return net.eval(), info, str(path)


def _device_of(net: Any) -> Any:
    """Where a network's weights are (an in-memory model may sit on a GPU); inputs must go there."""
    import torch

    return next((p.device for p in net.parameters()), torch.device("cpu"))


@contextmanager
def _onnx_output(out: Path, what: str) -> Iterator[Path]:
    """atomic_path for an ONNX file, where any failure but a ModelError becomes one ModelError line."""
    try:
        with atomic_path(out) as tmp:
            yield tmp
    except ModelError:
        raise
    except Exception as exc:  # exporters and onnxruntime raise many types
        raise ModelError(f"{out}: {what} failed ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def _set_metadata(proto: Any, entries: dict[str, str]) -> None:
    keep = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in entries.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _torch_export(net: Any, path: Path, size: int, opset: int, dynamic_batch: bool, exporter: str) -> None:
    import torch

    dummy = torch.rand(1, 3, size, size, device=_device_of(net))
    with warnings.catch_warnings():
        # The TorchScript exporter's deprecation notice is expected; see the module docstring.
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(net, (dummy,), str(path), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=axes,
                              do_constant_folding=True)
        elif exporter == "dynamo":
            shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
            program = torch.onnx.export(net, (dummy,), dynamo=True, opset_version=opset, verbose=False,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes=shapes)
            program.save(str(path))
        else:
            raise ModelError(f"unknown ONNX exporter {exporter!r}: choose torchscript or dynamo")


def export_onnx(model: str | Path | tuple, out: str | Path, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True,
                check_images: list[np.ndarray] | None = None, check_count: int = 8,
                exporter: str = "torchscript", verbose: bool = False) -> dict[str, Any]:
    """Export a model (zoo name, model file, or (model, info)) to ONNX at `out`, atomically.

    Then checks parity with torch on `check_images` (RGB crops) or on real face crops (random
    images when none can be read) and returns a report: max/mean coordinate difference in input
    pixels, the source of the check images, exporter, opset and file size.
    """
    require_train("ONNX export", ("torch", "timm", "onnx"))
    import onnx
    import torch

    out = check_export_target(model, out)
    net, info, label = resolve_network(model)
    size = int(info.input_size)
    if exporter == "torchscript" and not MIN_OPSET <= opset <= MAX_TORCHSCRIPT_OPSET:
        # checked here: the exporter's own failure also prints the whole graph to stdout
        raise ModelError(f"opset {opset} is not supported by the ONNX exporter: use {MIN_OPSET}..{MAX_TORCHSCRIPT_OPSET}")
    t0 = time.perf_counter()
    with _onnx_output(out, f"ONNX export of {label}") as tmp:
        with torch.no_grad():
            _torch_export(net, tmp, size, opset, dynamic_batch, exporter)
        proto = onnx.load(str(tmp))
        _set_metadata(proto, {METADATA_KEY: json.dumps(asdict(info))})
        proto.producer_name = "kdlandmarks"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    report: dict[str, Any] = {"path": str(out), "model": label, "arch": info.arch, "num_points": info.num_points,
                              "input_size": size, "opset": opset, "exporter": exporter,
                              "dynamic_batch": dynamic_batch, "bytes": out.stat().st_size,
                              "export_s": round(time.perf_counter() - t0, 2)}
    if check_images is not None:
        crops, source = list(check_images), f"{len(check_images)} given crops"
    else:
        crops, _, source = face_crops(size, check_count, info.crop_margin)
    batch = to_batch(crops, size)
    with torch.no_grad():
        reference = net(torch.from_numpy(batch).to(_device_of(net))).float().cpu().numpy()
    runner = OnnxRegressor(out)
    # Batch 1 is what a detector runs per face; the whole batch checks the dynamic axis too.
    single = np.concatenate([runner(batch[i:i + 1]) for i in range(len(batch))])
    got = runner(batch) if dynamic_batch else single
    worst = single if np.abs(single - reference).max() >= np.abs(got - reference).max() else got
    report.update(_compare(reference, worst, info))
    report["check_source"] = source
    if verbose:
        print(format_parity(report, "onnx vs torch"))
    return report


def _compare(reference: np.ndarray, got: np.ndarray, info: ModelInfo) -> dict[str, float]:
    """Coordinate differences of two (B, 2N) outputs, in input pixels and in output units."""
    from kdlandmarks.data.codec import LandmarkCodec

    codec = LandmarkCodec(info.input_size, info.space)
    ref_px, got_px = codec.decode(reference.astype(np.float64)), codec.decode(got.astype(np.float64))
    dist = np.linalg.norm(ref_px - got_px, axis=-1)
    return {"max_diff_px": float(np.abs(ref_px - got_px).max()), "mean_point_error_px": float(dist.mean()),
            "max_diff_out": float(np.abs(reference - got).max()), "check_faces": int(reference.shape[0])}


def format_parity(report: dict[str, Any], what: str) -> str:
    return (f"{what}: max coordinate difference {report['max_diff_px']:.4f} px, mean point distance "
            f"{report['mean_point_error_px']:.4f} px (input {report['input_size']} px) on {report['check_source']}")


# --------------------------------------------------------------------------------------------------
# int8
# --------------------------------------------------------------------------------------------------

class _CropReader:
    """onnxruntime CalibrationDataReader over a float32 batch, one image per call (how the model runs)."""

    def __init__(self, batch: np.ndarray) -> None:
        self._items = iter([{INPUT_NAME: batch[i:i + 1]} for i in range(len(batch))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)

    def rewind(self) -> None:  # required by newer onnxruntime readers; data is used once
        pass


def quantize_int8(onnx_in: str | Path, onnx_out: str | Path, calibration_crops: Sequence[np.ndarray] | None = None,
                  method: str = "static", check_crops: Sequence[np.ndarray] | None = None,
                  check_landmarks: np.ndarray | None = None) -> dict[str, Any]:
    """Quantise an exported model to int8 at `onnx_out`, atomically; returns its accuracy cost vs fp32.

    method="static" (default): QDQ, per-channel int8 weights with reduce_range (7-bit: AVX2 CPUs
    without VNNI saturate in the u8 x s8 product otherwise), uint8 activations calibrated (min-max)
    on `calibration_crops` (real face crops; the bundled sample when None), and the linear head kept
    in fp32 (an 8-bit output would step by 1/255 of the coordinate range). "dynamic" (ConvInteger) is
    slower than fp32 on CPUs without VNNI and kept only for comparison; accuracy and speed of the shipped
    int8 models are in their model cards and `kdlandmarks bench`. The report holds max/mean coordinate
    differences vs fp32 in input pixels on `check_crops` (default: the calibration crops) and, when
    `check_landmarks` (crop pixels) are given, the NME of both models (inter-ocular).
    """
    require_train("int8 quantisation", ("onnx",))
    src = OnnxRegressor(onnx_in)
    if calibration_crops is None:
        calibration_crops, auto_points, _ = face_crops(src.input_size, 32, src.info.crop_margin)
        if check_crops is None and check_landmarks is None:
            check_landmarks = auto_points
    calib = to_batch(calibration_crops, src.input_size)
    out = Path(onnx_out)
    with _onnx_output(out, f"int8 quantisation of {onnx_in}") as tmp:
        _write_int8(Path(onnx_in), tmp, method, calib, src.info)
    if check_crops is None:
        return _int8_report(src, out, method, calib, "calibration", check_landmarks)
    return _int8_report(src, out, method, to_batch(check_crops, src.input_size), "given", check_landmarks)


def _write_int8(onnx_in: Path, tmp: Path, method: str, calib: np.ndarray, info: ModelInfo) -> None:
    """The int8 model of `onnx_in` at `tmp`, with the model's info and how it was quantised as metadata."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = tmp.with_name(tmp.name + ".pre.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Shape inference + graph clean-up first, as onnxruntime recommends before quantising.
            quant_pre_process(str(onnx_in), str(pre), skip_symbolic_shape=False)
            _quantize(pre, tmp, method, calib)
        proto = onnx.load(str(tmp))
        _set_metadata(proto, {METADATA_KEY: json.dumps(asdict(info)),
                              QUANT_KEY: json.dumps({"method": method, "weights": "int8 per-channel, reduce_range",
                                                     "head": "fp32" if method == "static" else "int8",
                                                     "calibration_images": len(calib)})})
        onnx.save(proto, str(tmp))
    finally:
        pre.unlink(missing_ok=True)


def _quantize(pre: Path, tmp: Path, method: str, calib: np.ndarray) -> None:
    """onnxruntime's quantiser for `method` (see quantize_int8), from the pre-processed graph to `tmp`."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    if method == "static":
        head = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type in ("Gemm", "MatMul")]
        quantize_static(str(pre), str(tmp), _CropReader(calib), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=head)
    elif method == "dynamic":
        quantize_dynamic(str(pre), str(tmp), per_channel=True, weight_type=QuantType.QUInt8)
    else:
        raise ModelError(f"unknown int8 method {method!r}: choose static or dynamic")


def _int8_report(src: OnnxRegressor, out: Path, method: str, check: np.ndarray, check_source: str,
                 check_landmarks: np.ndarray | None) -> dict[str, Any]:
    """quantize_int8's report: the int8 model at `out` against the fp32 one (`src`) on the `check` batch."""
    fp32, int8 = src(check), OnnxRegressor(out)(check)
    report: dict[str, Any] = {"path": str(out), "method": method, "input_size": src.input_size,
                              "bytes": out.stat().st_size, "check_source": f"{len(check)} {check_source} crops"}
    report.update(_compare(fp32, int8, src.info))
    if check_landmarks is not None and len(check_landmarks) == len(check):
        report.update(_nme_pair(fp32, int8, np.asarray(check_landmarks), src.info))
    return report


def _nme_pair(fp32: np.ndarray, int8: np.ndarray, gt_crop_px: np.ndarray, info: ModelInfo) -> dict[str, float]:
    from kdlandmarks.data.codec import LandmarkCodec
    from kdlandmarks.evaluation.metrics import per_image_nme
    from kdlandmarks.data.schemes import get_scheme

    try:
        scheme = get_scheme(info.scheme)
        if scheme.num_points != gt_crop_px.shape[1] or scheme.num_points != info.num_points:
            return {}
        codec = LandmarkCodec(info.input_size, info.space)
        a = per_image_nme(codec.decode(fp32.astype(np.float64)), gt_crop_px, scheme)
        b = per_image_nme(codec.decode(int8.astype(np.float64)), gt_crop_px, scheme)
    except Exception:  # NME is an extra; a scheme mismatch must not fail the quantisation
        return {}
    return {"nme_fp32": float(a.mean()), "nme_int8": float(b.mean())}


def export_onnx_int8(model: str | Path | tuple, out: str | Path, opset: int = DEFAULT_OPSET,
                     dynamic_batch: bool = True, check_faces: int = 8, calibration_faces: int = 32,
                     exporter: str = "torchscript") -> dict[str, Any]:
    """Export a model (zoo name, model file, or (model, info)) straight to a static int8 ONNX at `out`,
    atomically: fp32 export (with its parity check vs torch, export_onnx) into a temporary folder beside
    `out`, then quantize_int8 calibrated on `calibration_faces` real face crops and checked on
    `check_faces` others. What `kdlandmarks export --format onnx-int8` runs.

    Returns {"fp32": export_onnx's report, "int8": quantize_int8's report (NME of both models when the
    check faces have landmarks), "calibration_faces": the crops actually used}.
    """
    import tempfile

    if check_faces < 1 or calibration_faces < 1:
        raise ConfigError("{check_faces} and {calibration_faces} must be at least 1",
                          parameters=("check_faces", "calibration_faces"))
    out = check_export_target(model, out)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".kdl-export-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        report = export_onnx(model, fp32, opset=opset, dynamic_batch=dynamic_batch, check_count=check_faces,
                             exporter=exporter)
        info = OnnxRegressor(fp32).info
        calib, _, _ = face_crops(info.input_size, calibration_faces, info.crop_margin)
        check, points, source = face_crops(info.input_size, check_faces, info.crop_margin)
        q = quantize_int8(fp32, out, calib, check_crops=check, check_landmarks=points)
    q["check_source"] = source
    return {"fp32": report, "int8": q, "calibration_faces": len(calib)}
