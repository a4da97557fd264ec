"""onnxruntime sessions: small batches may run on a one-thread session of their own (runtime.SMALL_BATCH),
chosen by measurement; the choice must never change a result."""
import numpy as np
import pytest

from kdlandmarks.inference import runtime
from kdlandmarks.models.zoo import resolve_model

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def lite_int8():
    return resolve_model("kd-student-300w-lite", backend="onnx")


def test_small_batches_give_the_same_outputs_whichever_session_runs_them(lite_int8, monkeypatch):
    monkeypatch.setattr(runtime, "CPU_COUNT", 2)  # a one-core machine never builds the second session
    x = np.random.default_rng(0).random((5, 3, 128, 128), dtype=np.float32)
    regressor = runtime.OnnxRegressor(lite_int8)
    single = ort.InferenceSession(str(lite_int8), runtime.session_options(1), providers=["CPUExecutionProvider"])
    whole = regressor(x)
    assert regressor._small_session is None  # a batch of 5 is not small: no second session yet
    for i in range(5):
        one = regressor(x[i:i + 1])
        np.testing.assert_array_equal(one, whole[i:i + 1])
        np.testing.assert_array_equal(one, single.run(None, {"images": x[i:i + 1]})[0])
    assert regressor._small_session is not None and regressor.small_batch_threads in (1, None)
    np.testing.assert_array_equal(regressor(x[:2]), whole[:2])


def test_a_fixed_thread_count_or_one_core_keeps_one_session(lite_int8, monkeypatch):
    x = np.zeros((1, 3, 128, 128), dtype=np.float32)
    fixed = runtime.OnnxRegressor(lite_int8, threads=2)
    fixed(x)
    assert fixed._small_session is None
    monkeypatch.setattr(runtime, "CPU_COUNT", 1)
    one_core = runtime.OnnxRegressor(lite_int8)
    one_core(x)
    assert one_core._small_session is None
