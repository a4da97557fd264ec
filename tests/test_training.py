"""Training engine through the CLI: teachers, KD/L2 students, teacher cache, resume, LR schedule, errors, DDP."""
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from kdlandmarks.cli import main
from kdlandmarks.data.datasets import sample_root
from kdlandmarks.errors import ConfigError
from kdlandmarks.models.backbones import ModelInfo, cpu_description, create_model, load_model, save_model
from kdlandmarks.data.store import FaceStore
from kdlandmarks.training.config import TeacherCache, load_recipe, shipped_recipes
from kdlandmarks.training.data import split_faces
from kdlandmarks.models.zoo import SHIPPED

ARCH = "mobilenetv2_050"
# the paper's recipe (Adam + Keras decay, L2 teachers, teacher cache, fixed copies), made tiny and CPU-only
TINY = ["--config", "300w-paper", "--set", "data.num_workers=0", "--set", "trainer.accelerator=cpu",
        "--set", "trainer.devices=1", "--set", "trainer.precision=32-true",
        "--set", f"teacher.arch={ARCH}", "--set", f"student.arch={ARCH}", "--set", "input_size=32",
        "--set", "data.batch_size=4", "--set", "teacher.epochs=1", "--set", "student.epochs=1", "--quiet"]
# 6 faces x 2 copies; ceil(6 * 0.05) = 1 face (2 samples) held out -> 10 training samples; batches of 4 with
# the ragged last one dropped -> 2 steps per epoch
STEPS_PER_EPOCH = 2


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_metrics(run: Path) -> list[dict]:
    with open(run / "logs" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def train(*argv: str) -> int:
    return main(["train", *argv])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One tiny store (input 32, 2 copies, soft landmarks) and both teachers, shared by the tests."""
    base = tmp_path_factory.mktemp("train")
    data = base / "data" / "afw"
    data.mkdir(parents=True)
    for pts in sorted((sample_root() / "afw").glob("*.pts"))[:6]:
        shutil.copy(pts, data)
        shutil.copy(pts.with_suffix(".jpg"), data)
    store = base / "store"
    assert main(["prepare", "--dataset", "300w", "--root", str(base / "data"), "--split", "afw", "--size", "32",
                 "--copies", "2", "--out", str(store), "--quiet"]) == 0
    assert main(["asm", "--store", str(store), "--variance", "0.95"]) == 0
    runs = base / "runs"
    for kind in ("tough", "tolerant"):
        assert train("teacher", "--kind", kind, "--store", str(store), "--out", str(runs / kind), *TINY) == 0
    return SimpleNamespace(base=base, store=store, runs=runs, tough=runs / "tough", tolerant=runs / "tolerant")


def student(env, out: Path, *extra: str) -> int:
    return train("student", "--store", str(env.store), "--out", str(out), *TINY, *extra)


def kd_args(env) -> list[str]:
    return ["--loss", "kd", "--tough", str(env.tough), "--tolerant", str(env.tolerant / "model.pt")]


# ---------------------------------------------------------------- teachers


@pytest.mark.parametrize("kind", ["tough", "tolerant"])
def test_teacher_run_folder(env, kind):
    run = env.runs / kind
    for name in ("model.pt", "config.yaml", "summary.json", "checkpoints/last.ckpt", "logs/metrics.csv"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["role"] == "teacher" and summary["kind"] == kind and summary["loss"] == "l2"
    assert summary["epochs_completed"] == 1 and summary["steps"] == STEPS_PER_EPOCH
    assert summary["train_samples"] == 10 and summary["val_faces"] == 1
    assert np.isfinite(summary["last_val_nme"])
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["role"] == "teacher" and cfg["kind"] == kind
    assert cfg["recipe"]["teacher"]["arch"] == ARCH and cfg["recipe"]["input_size"] == 32
    _, info = load_model(run / "model.pt")
    assert info.arch == ARCH and info.num_points == 68 and info.input_size == 32 and info.scheme == "300w"
    assert info.metadata["kind"] == kind and info.metadata["role"] == "teacher"
    rows = read_metrics(run)
    assert any(r.get("train_loss_epoch") and np.isfinite(float(r["train_loss_epoch"])) for r in rows)
    hp = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["hyper_parameters"]
    assert hp["objective"]["target"] == ("soft" if kind == "tolerant" else "hard")


def test_model_file_and_lightning_checkpoint_load_alike(env):
    model, info = load_model(env.tough / "model.pt")
    ckpt_model, ckpt_info = load_model(env.tough / "checkpoints" / "last.ckpt")
    assert ckpt_info.arch == info.arch and ckpt_info.num_points == info.num_points
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 136)
        torch.testing.assert_close(ckpt_model(x), out)


def test_checkpoint_layout_constants_match_the_lightning_module():
    """models.read_training_checkpoint reads LandmarkModule checkpoints by its argument name and attribute."""
    import inspect

    from kdlandmarks.models.backbones import CHECKPOINT_INFO_KEY, CHECKPOINT_MODEL_PREFIX
    from kdlandmarks.training.module import LandmarkModule

    assert list(inspect.signature(LandmarkModule.__init__).parameters)[1] == CHECKPOINT_INFO_KEY
    assert CHECKPOINT_MODEL_PREFIX == "model."


def test_teachers_differ(env):
    a, _ = load_model(env.tough / "model.pt")
    b, _ = load_model(env.tolerant / "model.pt")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))  # soft targets, not the hard ones


# ---------------------------------------------------------------- students


@pytest.fixture(scope="module")
def kd_cached(env):
    out = env.runs / "kd-cached"
    assert student(env, out, *kd_args(env)) == 0
    return out


def test_kd_student_uses_teacher_cache(env, kd_cached):
    summary = json.loads((kd_cached / "summary.json").read_text())
    assert summary["loss"] == "kd" and summary["teacher_cache"] is True and summary["steps"] == STEPS_PER_EPOCH
    caches = sorted((env.store / "teacher_cache").glob("*.npy"))
    assert len(caches) == 2
    st = FaceStore(env.store)
    # the network input is the centred 32 px window of the 40 px stored crop: pixels 4..35, no resampling
    x = torch.from_numpy(np.array(st.images[:, 4:36, 4:36])).permute(0, 3, 1, 2).float() / 255
    expected = {}
    for kind in ("tough", "tolerant"):
        model, _ = load_model(env.runs / kind / "model.pt")
        with torch.no_grad():
            expected[kind] = model(x).numpy()
    cached = [np.load(c) for c in caches]
    for arr in cached:
        assert arr.shape == (len(st), 136) and arr.dtype == np.float32
    for kind, want in expected.items():
        assert any(np.allclose(arr, want, atol=1e-4) for arr in cached), kind
    cfg = yaml.safe_load((kd_cached / "config.yaml").read_text())
    assert set(cfg["teachers"]) == {"tough", "tolerant"}
    rows = read_metrics(kd_cached)
    assert any(r.get("train_loss_epoch") and np.isfinite(float(r["train_loss_epoch"])) for r in rows)


def test_kd_student_online_teachers_matches_cache(env, kd_cached):
    out = env.runs / "kd-online"
    assert student(env, out, *kd_args(env), "--online-teachers") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher_cache"] is False and summary["steps"] == STEPS_PER_EPOCH
    # same seed, same fixed inputs, same teacher outputs: the same student, whether cached or online
    a, _ = load_model(kd_cached / "model.pt")
    b, _ = load_model(out / "model.pt")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        if pa.is_floating_point():
            torch.testing.assert_close(pa, pb, atol=1e-4, rtol=1e-3, msg=name)
    # the frozen teachers are not part of the student's checkpoint
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert all(k.startswith("model.") for k in state)


@pytest.mark.parametrize("online", [False, True], ids=["cached", "online"])
def test_kd_teacher_of_another_input_size(env, online):
    """A 48 px teacher teaches a 32 px student: it sees the same window of each stored crop at 48 px."""
    teacher = fake_teacher(env.base / "tough48.pt", input_size=48)
    store = env.base / "store-teacher48"  # a store of its own: other tests count the caches in env.store
    if not store.exists():
        shutil.copytree(env.store, store, ignore=shutil.ignore_patterns("teacher_cache"))
    out = env.runs / f"kd-teacher48-{'online' if online else 'cached'}"
    args = ["--loss", "kd", "--tough", str(teacher), "--tolerant", str(env.tolerant / "model.pt")]
    assert train("student", "--store", str(store), "--out", str(out), *TINY, *args,
                 *(["--online-teachers"] if online else [])) == 0
    assert load_model(out / "model.pt")[1].input_size == 32
    if online:
        return
    st = FaceStore(store)
    # the 32 px window (pixels 4..35 of the 40 px crop) at 48 px: the whole crop resized by 1.5, pixels 6..53
    crop = torch.from_numpy(np.array(st.images)).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(crop, size=(60, 60), mode="bilinear", align_corners=False)[..., 6:54, 6:54]
    model, _ = load_model(teacher)
    with torch.no_grad():
        want = model(x).numpy()
    assert any(np.allclose(np.load(c), want, atol=1e-4) for c in (store / "teacher_cache").glob("*.npy"))


@pytest.fixture(scope="module")
def l2_run(env):
    out = env.runs / "l2"
    # a strong decay makes the schedule visible within 2 steps
    assert student(env, out, "--loss", "l2", "--set", "student.lr_decay=0.5", "--set", "trainer.log_every_n_steps=1") == 0
    return out


def test_l2_student(l2_run):
    summary = json.loads((l2_run / "summary.json").read_text())
    assert summary["role"] == "student" and summary["loss"] == "l2" and summary["teacher_cache"] is False
    assert summary["steps"] == STEPS_PER_EPOCH
    model, info = load_model(l2_run / "model.pt")
    assert info.metadata["role"] == "student" and info.arch == ARCH


def test_lr_schedule_is_keras_decay(l2_run):
    lr0, decay = 1e-3, 0.5
    rows = [r for r in read_metrics(l2_run) if r.get("lr")]
    logged = {int(r["step"]): float(r["lr"]) for r in rows}
    assert len(logged) == STEPS_PER_EPOCH
    # the learning rate used by update t (0-based) is lr / (1 + decay * t)
    for t, lr in enumerate(v for _, v in sorted(logged.items())):
        assert lr == pytest.approx(lr0 / (1 + decay * t), rel=1e-6), t
    ckpt = torch.load(l2_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == STEPS_PER_EPOCH
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(lr0 / (1 + decay * STEPS_PER_EPOCH))


def test_init_starts_from_the_given_model(env, l2_run):
    """--init loads every weight: with a negligible learning rate the fine-tuned parameters stay the given ones."""
    out = env.runs / "l2-init"
    assert student(env, out, "--loss", "l2", "--init", str(l2_run / "model.pt"), "--set", "student.lr=1e-12") == 0
    start, _ = load_model(l2_run / "model.pt")
    tuned, info = load_model(out / "model.pt")
    assert info.metadata["init"] == str(l2_run / "model.pt")
    fresh = dict(create_model(ARCH, 68).named_parameters())
    for name, param in tuned.named_parameters():
        assert torch.allclose(param, dict(start.named_parameters())[name], rtol=0, atol=1e-9), name
    assert not torch.equal(fresh["head.weight"], dict(tuned.named_parameters())["head.weight"])


def test_resume_continues_steps(env, l2_run, capsys):
    out = env.runs / "l2-resume"
    shutil.copytree(l2_run, out)
    capsys.readouterr()
    assert student(env, out, "--loss", "l2", "--set", "student.lr_decay=0.5", "--set", "trainer.log_every_n_steps=1",
                   "--set", "student.epochs=2") == 0
    assert f"resuming from {out / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 * STEPS_PER_EPOCH and summary["epochs_completed"] == 2
    # the run's cost adds the cut-off invocation's logged training time to the resumed one's
    first = json.loads((l2_run / "summary.json").read_text())
    assert 0 < summary["seconds_before_resume"] <= first["seconds"]
    assert summary["seconds"] > summary["seconds_before_resume"]
    assert summary["hardware"] == cpu_description()  # the machine the seconds were spent on
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2 * STEPS_PER_EPOCH
    # the schedule continued too
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-3 / (1 + 0.5 * 2 * STEPS_PER_EPOCH))
    # the first epoch's log lines survive the resume, beside the resumed run's
    assert (out / "logs" / "metrics.1.csv").is_file()
    rows = [r for f in sorted((out / "logs").glob("metrics*.csv")) for r in csv.DictReader(open(f))]
    assert sorted(int(r["step"]) for r in rows if r.get("lr")) == list(range(2 * STEPS_PER_EPOCH))
    # and a finished run, rerun, does no more work
    assert student(env, out, "--loss", "l2", "--set", "student.lr_decay=0.5", "--set", "student.epochs=2") == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 2 * STEPS_PER_EPOCH


def test_restart_ignores_checkpoint(env, l2_run, capsys):
    out = env.runs / "l2-restart"
    shutil.copytree(l2_run, out)
    capsys.readouterr()
    assert student(env, out, "--loss", "l2", "--set", "student.lr_decay=0.5", "--set", "trainer.log_every_n_steps=1",
                   "--restart") == 0
    assert "resuming" not in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == STEPS_PER_EPOCH and summary["seconds_before_resume"] == 0
    # trained again from scratch with the same seed: the same weights (runs are deterministic)
    a, _ = load_model(l2_run / "model.pt")
    b, _ = load_model(out / "model.pt")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(pa, pb, msg=name)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(env, l2_run, monkeypatch, capsys):
    import kdlandmarks.training.module as module

    out = env.runs / "l2-nan"
    shutil.copytree(l2_run, out)
    last = out / "checkpoints" / "last.ckpt"
    good, good_model = sha(last), sha(out / "model.pt")
    monkeypatch.setitem(module.REGRESSION_LOSSES, "l2", lambda pred, target: (pred - target).sum() * float("nan"))
    capsys.readouterr()
    code = student(env, out, "--loss", "l2", "--set", "student.lr_decay=0.5", "--set", "student.epochs=2")
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nan" in lines[0] and f"step {STEPS_PER_EPOCH}" in lines[0]
    assert sha(last) == good and sha(out / "model.pt") == good_model
    assert load_model(last)[1].arch == ARCH


def test_last_checkpoint_written_every_epoch(env, monkeypatch, capsys):
    """A run killed in its third epoch resumes from the end of the second (not from its start)."""
    import kdlandmarks.training.module as module

    out = env.runs / "l2-crash"
    real = module.REGRESSION_LOSSES["l2"]
    calls = {"n": 0}

    def crash_in_third_epoch(pred, target):
        calls["n"] += 1
        if calls["n"] > 2 * STEPS_PER_EPOCH:
            raise RuntimeError("killed")  # like a kill: the loop stops mid-epoch, no checkpoint on the way out
        return real(pred, target)

    monkeypatch.setitem(module.REGRESSION_LOSSES, "l2", crash_in_third_epoch)
    with pytest.raises(RuntimeError, match="killed"):
        student(env, out, "--loss", "l2", "--set", "student.epochs=3")
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["global_step"] == 2 * STEPS_PER_EPOCH



@pytest.mark.parametrize("extra", [[], ["--set", "data.augment={rotation: 0.2, flip: 0.5}",
                                        "--set", "student.teacher_cache=warp"]], ids=["cached", "warp"])
def test_resident_store_trains_the_same_student(env, extra):
    """data.resident (the store on the training device, index-only batches): the same KD student, step for
    step, as the loader that copies each sample (fixed copies with cached teachers, and fresh augmentation)."""
    runs = {}
    for resident in ("false", "true"):
        out = env.runs / f"kd-resident-{resident}-{len(extra)}"
        assert student(env, out, *kd_args(env), "--set", f"data.resident={resident}", *extra) == 0
        runs[resident] = out
    a, _ = load_model(runs["false"] / "model.pt")
    b, _ = load_model(runs["true"] / "model.pt")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        if pa.is_floating_point():
            torch.testing.assert_close(pa, pb, msg=name)
    va = json.loads((runs["false"] / "summary.json").read_text())["last_val_nme"]
    assert json.loads((runs["true"] / "summary.json").read_text())["last_val_nme"] == pytest.approx(va, abs=1e-4)


def test_kd_student_takes_shipped_teacher_names(env, kd_cached, monkeypatch):
    """`--tough NAME --tolerant NAME` with shipped teachers' names: the same student as from their files."""
    weights = env.base / "weights"
    weights.mkdir(exist_ok=True)
    for kind in ("tough", "tolerant"):
        shutil.copy(env.runs / kind / "model.pt", weights / f"teacher-{kind}.pt")
        monkeypatch.setitem(SHIPPED, f"teacher-{kind}", "a test teacher")
    monkeypatch.setattr("kdlandmarks.models.zoo.WEIGHTS_DIR", weights)
    out = env.runs / "kd-shipped-names"
    assert student(env, out, "--loss", "kd", "--tough", "teacher-tough", "--tolerant", "teacher-tolerant") == 0
    a, _ = load_model(kd_cached / "model.pt")
    b, _ = load_model(out / "model.pt")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        if pa.is_floating_point():
            torch.testing.assert_close(pa, pb, msg=name)


# ---------------------------------------------------------------- errors before training


def fake_teacher(path: Path, num_points: int = 68, input_size: int = 32, scheme: str = "300w", **info) -> Path:
    save_model(path, create_model(ARCH, num_points), ModelInfo(ARCH, num_points, input_size, scheme=scheme, **info))
    return path


def no_soft_store(env) -> Path:
    copy = env.base / "store-nosoft"
    if not copy.exists():
        shutil.copytree(env.store, copy, ignore=shutil.ignore_patterns("soft_landmarks.npy", "teacher_cache"))
    return copy


ERRORS = {
    "unknown key": (lambda env: ["student", "--store", str(env.store), "--loss", "l2", "--set", "student.epochz=1"],
                    "epochz"),
    "bad value": (lambda env: ["student", "--store", str(env.store), "--loss", "l2", "--set", "student.epochs=many"],
                  "student.epochs"),
    "point count": (lambda env: ["student", "--store", str(env.store), "--loss", "kd",
                                 "--tough", str(fake_teacher(env.base / "t29.pt", 29, scheme="cofw")),
                                 "--tolerant", str(env.tolerant)], "29 points"),
    "no soft targets": (lambda env: ["teacher", "--kind", "tolerant", "--store", str(no_soft_store(env))],
                        "kdlandmarks asm"),
    "input size in pixels": (lambda env: ["student", "--store", str(env.store), "--set", "space=pixels", "--loss",
                                          "kd", "--tough", str(fake_teacher(env.base / "tpx32.pt", space="pixels")),
                                          "--tolerant", str(fake_teacher(env.base / "tpx48.pt", input_size=48,
                                                                         space="pixels"))], "48 px"),
    "teacher space": (lambda env: ["student", "--store", str(env.store), "--loss", "kd", "--tough", str(env.tough),
                                   "--tolerant", str(fake_teacher(env.base / "tpx.pt", space="pixels"))], "'pixels'"),
    "teacher margin": (lambda env: ["student", "--store", str(env.store), "--loss", "kd", "--tough", str(env.tough),
                                    "--tolerant", str(fake_teacher(env.base / "tm.pt", crop_margin=0.3))], "margin 0.3"),
    "kd without teachers": (lambda env: ["student", "--store", str(env.store), "--loss", "kd"], "--tough"),
    "kd one teacher": (lambda env: ["student", "--store", str(env.store), "--loss", "kd", "--tough", str(env.tough)],
                       "--tolerant"),
    "cache with augment": (lambda env: ["student", "--store", str(env.store), *kd_args(env),
                                        "--set", "data.augment={rotation: 0.1}"], "data.augment"),
    "bad cache mode": (lambda env: ["student", "--store", str(env.store), *kd_args(env),
                                    "--set", "student.teacher_cache=warped"], "bool or warp"),
    "unknown augment": (lambda env: ["student", "--store", str(env.store), "--loss", "l2",
                                     "--set", "data.augment={rotaton: 0.1}"], "rotaton"),
    "missing teacher": (lambda env: ["student", "--store", str(env.store), "--loss", "kd", "--tough",
                                     str(env.base / "nope.pt"), "--tolerant", str(env.tolerant)], "nope.pt"),
    "init missing": (lambda env: ["student", "--store", str(env.store), "--loss", "l2",
                                  "--init", str(env.base / "nope-init.pt")], "nope-init.pt"),
    "init points": (lambda env: ["student", "--store", str(env.store), "--loss", "l2",
                                 "--init", str(fake_teacher(env.base / "i29.pt", 29, scheme="cofw"))], "29 points"),
    "init arch": (lambda env: ["teacher", "--kind", "tough", "--store", str(env.store), "--set",
                               "teacher.arch=mobilenetv2_035", "--init", str(env.tough)], "mobilenetv2_035"),
    "no store": (lambda env: ["student", "--loss", "l2"], "--store"),
    "not a store": (lambda env: ["student", "--store", str(env.base / "data"), "--loss", "l2"], "prepare"),
    "unknown recipe": (lambda env: ["student", "--store", str(env.store), "--config", "300w-huge"], "300w-huge"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_setup_exits_2_before_training(env, case, capsys):
    argv, needle = ERRORS[case]
    out = env.base / "err" / case.replace(" ", "-")
    argv = argv(env)
    role, rest = argv[0], argv[1:]
    capsys.readouterr()
    code = train(role, "--out", str(out), *TINY, *rest)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdlandmarks: error: ") and needle in lines[0], err
    assert not out.exists()  # nothing written, nothing trained


@pytest.mark.parametrize("setting,needle", [("trainer.strategy=bogus", "bogus"),
                                             ("trainer.max_time=soon", "soon")])
def test_bad_trainer_settings_are_one_line(env, setting, needle, capsys):
    out = env.base / "err-trainer" / setting.split("=")[0]
    capsys.readouterr()
    code = student(env, out, "--loss", "l2", "--set", setting)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "trainer settings" in lines[0] and needle in lines[0], lines
    assert not (out / "model.pt").exists()


def test_custom_scheme_model_records_its_scheme_file(tmp_path, monkeypatch):
    """A model trained on a custom-scheme store names the scheme file, so training, evaluation of a
    folder and the int8 check can load the scheme again (its bare name cannot be found)."""
    data = tmp_path / "data" / "faces"
    data.mkdir(parents=True)
    for pts in sorted((sample_root() / "afw").glob("*.pts"))[:4]:
        shutil.copy(pts, data)
        shutil.copy(pts.with_suffix(".jpg"), data)
    (tmp_path / "my68.yaml").write_text("name: my68\nnum_points: 68\nflip_pairs: [[36, 45]]\ninter_ocular: [36, 45]\n")
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--dataset", "folder", "--root", "data", "--split", "faces", "--scheme", "my68.yaml",
                 "--size", "32", "--out", "store", "--quiet"]) == 0
    assert train("teacher", "--kind", "tough", "--store", "store", "--out", "run", *TINY,
                 "--set", "data.val_fraction=0.25", "--set", "teacher.epochs=0") == 0
    _, info = load_model(tmp_path / "run" / "model.pt")
    assert info.scheme == str(tmp_path / "my68.yaml")


def test_augment_online_with_online_teachers_is_allowed(env):
    out = env.runs / "kd-aug"
    assert student(env, out, *kd_args(env), "--online-teachers", "--set", "data.augment={rotation: 0.3, flip: 0.5}") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher_cache"] is False and summary["steps"] == STEPS_PER_EPOCH


def test_warped_teacher_cache_trains_with_fresh_augmentation(env):
    out = env.runs / "kd-warp"
    assert student(env, out, *kd_args(env), "--set", "student.teacher_cache=warp",
                   "--set", "data.augment={rotation: 0.3, flip: 0.5, scale: 0.1}") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher_cache"] == "warp" and summary["steps"] == STEPS_PER_EPOCH


def test_warped_cache_moves_teacher_points_like_the_labels():
    """A teacher that predicted the plain crop's labels exactly, cached, must equal the augmented labels."""
    from kdlandmarks.training.module import InputPipeline, LandmarkModule, Objective, TeacherSource

    info = ModelInfo(arch=ARCH, num_points=68, input_size=32, scheme="300w")
    augment = {"rotation": 0.4, "flip": 1.0, "scale": 0.1, "translate": 0.05}
    module = LandmarkModule(asdict(info), Objective(loss="kd"),
                            inputs=InputPipeline(augment=augment, source_size=40, window=32.0),
                            teachers=TeacherSource(warp_cached=True))
    module._trainer = SimpleNamespace(training=True, global_step=5, global_rank=0)
    gen = torch.Generator().manual_seed(0)
    landmarks = 8 + 24 * torch.rand(3, 68, 2, generator=gen)  # stored-crop pixels
    plain = module.augmenter(torch.zeros(3, 40, 40, 3, dtype=torch.uint8), landmarks)[1]
    batch = {"image": torch.zeros(3, 40, 40, 3, dtype=torch.uint8), "landmarks": landmarks,
             "tough": module.codec.encode(plain), "tolerant": module.codec.encode(plain + 0.5)}
    batch = module.on_after_batch_transfer(batch, 0)
    moved = module.codec.encode(batch["points"])
    assert not torch.allclose(moved, module.codec.encode(plain), atol=1e-2)  # the step did augment
    torch.testing.assert_close(batch["tough"], moved, atol=1e-4, rtol=0)
    assert not torch.allclose(batch["tolerant"], moved, atol=1e-3)  # the offset teacher stays offset
    module.teachers = TeacherSource(warp_cached=False)
    with pytest.raises(Exception, match="teacher_cache=warp"):
        module.on_after_batch_transfer({"image": batch["image"], "landmarks": landmarks,
                                        "tough": batch["tough"]}, 0)


def test_teacher_flip_test_is_mirror_equivariant():
    """The flip-test output on a mirrored image is the mirrored (relabelled) output on the image, for any net."""
    from kdlandmarks.data.codec import LandmarkCodec
    from kdlandmarks.data.schemes import get_scheme
    from kdlandmarks.training.teacher_cache import flip_tested

    torch.manual_seed(0)
    model = create_model(ARCH, 68, 0.0).eval()
    codec, scheme = LandmarkCodec(32, "normalized"), get_scheme("300w")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        on_image = codec.decode(flip_tested(model, x, codec, scheme)).numpy()
        on_mirror = codec.decode(flip_tested(model, x.flip(-1), codec, scheme)).numpy()
        single = codec.decode(model(x)).numpy()
    np.testing.assert_allclose(on_mirror, scheme.flip(on_image, 32), atol=1e-4)
    assert np.abs(on_image - single).max() > 1e-3  # the average differs from the single view


def test_kd_with_teacher_flip_test_cached_matches_online(env, kd_cached):
    cached, online = env.runs / "kd-flip-cached", env.runs / "kd-flip-online"
    assert student(env, cached, *kd_args(env), "--set", "student.teacher_flip_test=true") == 0
    assert student(env, online, *kd_args(env), "--online-teachers", "--set", "student.teacher_flip_test=true") == 0
    assert len(list((env.store / "teacher_cache").glob("*.npy"))) == 4  # plain and flip-test caches side by side
    a, _ = load_model(cached / "model.pt")
    b, _ = load_model(online / "model.pt")
    plain, _ = load_model(kd_cached / "model.pt")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        if pa.is_floating_point():
            torch.testing.assert_close(pa, pb, atol=1e-4, rtol=1e-3, msg=name)
    assert any(not torch.allclose(pa, pp) for pa, pp in zip(a.state_dict().values(), plain.state_dict().values())
               if pa.is_floating_point())  # the flip-test teachers taught something else


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_warmup_schedules_rise_then_fall(env, schedule):
    """One-cycle and cosine with warm-up: lr climbs to its peak, then decays to about zero by the last step."""
    out = env.runs / f"sched-{schedule}"
    assert student(env, out, "--loss", "l1", "--set", f"student.schedule={schedule}", "--set", "student.optimizer=adamw",
                   "--set", "student.weight_decay=1e-4", "--set", "student.warmup=0.3", "--set", "student.epochs=5",
                   "--set", "trainer.log_every_n_steps=1") == 0
    lrs = [float(r["lr"]) for r in read_metrics(out) if r.get("lr")]
    assert len(lrs) == 5 * STEPS_PER_EPOCH
    peak = int(np.argmax(lrs))
    assert 0 < peak < len(lrs) - 1 and max(lrs) == pytest.approx(1e-3, rel=0.35)
    assert lrs[-1] < 0.35 * max(lrs) and lrs[0] < max(lrs)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert "weight_decay" in ckpt["optimizer_states"][0]["param_groups"][0]


@pytest.mark.parametrize("loss", ["smooth_l1", "wing"])
def test_robust_losses_train_a_teacher(env, loss):
    out = env.runs / f"teacher-{loss}"
    assert train("teacher", "--kind", "tough", "--store", str(env.store), "--out", str(out), *TINY,
                 "--set", f"teacher.loss={loss}") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["loss"] == loss and np.isfinite(summary["last_val_nme"])


def test_max_steps_mid_epoch_still_validates(env):
    """An equal-budget run capped by max_steps mid-epoch scores the weights it leaves."""
    out = env.runs / "max-steps"
    assert student(env, out, "--loss", "l1", "--set", "student.epochs=3", "--set", "trainer.max_steps=3") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and np.isfinite(summary["last_val_nme"])
    rows = [r for r in read_metrics(out) if r.get("train_seconds")]
    assert rows and float(rows[-1]["train_seconds"]) > 0


def test_bad_optimiser_schedule_and_teacher_loss_are_refused(env):
    with pytest.raises(ConfigError, match="optimizer"):
        load_recipe("300w-cpu", ["student.optimizer=sgdd"])
    with pytest.raises(ConfigError, match="schedule"):
        load_recipe("300w-cpu", ["teacher.schedule=step"])
    with pytest.raises(ConfigError, match="warmup"):
        load_recipe("300w-cpu", ["teacher.warmup=1.5"])
    assert train("teacher", "--kind", "tough", "--store", str(env.store), "--out", str(env.runs / "t-kd"), *TINY,
                 "--set", "teacher.loss=kd") == 2


# ---------------------------------------------------------------- config and split units


def test_shipped_recipes_load():
    assert {"300w-cpu", "300w-paper"} <= set(shipped_recipes())
    for name in set(shipped_recipes()) - {"300w-cpu"}:  # the paper's settings
        r = load_recipe(name)
        assert r.teacher.lr == 1e-3 and r.teacher.lr_decay == 1e-4 and r.data.augment is None
        assert r.teacher.optimizer == "adam" and r.teacher.schedule == "keras" and r.teacher.loss == "l2"
    cpu = load_recipe("300w-cpu")  # the recipe study's winner: fresh augmentation with the warped teacher cache, AdamW + one-cycle, L1
    assert cpu.copies == 1 and cpu.data.augment and cpu.student.teacher_cache is TeacherCache.WARP
    assert cpu.student.optimizer == "adamw" and cpu.student.schedule == "onecycle" and cpu.teacher.loss == "l1"
    paper = load_recipe("300w-paper")
    assert paper.input_size == 224 and paper.copies == 6 and paper.data.batch_size == 70
    assert paper.teacher.arch == "efficientnet_b3" and paper.student.arch == "mobilenetv2_100"


def test_recipe_overrides_and_errors(tmp_path):
    r = load_recipe("300w-cpu", ["student.epochs=3", "trainer.strategy=ddp", "data.augment={flip: 0.5}",
                                 "student.kd={alpha: 0.4}"])
    assert r.student.epochs == 3 and r.trainer.strategy == "ddp" and r.data.augment == {"flip": 0.5}
    assert r.student.kd == {"alpha": 0.4} and r.teacher.epochs == load_recipe("300w-cpu").teacher.epochs
    with pytest.raises(ConfigError, match="epochz"):
        load_recipe("300w-cpu", ["student.epochz=3"])
    with pytest.raises(ConfigError, match="nosuch"):
        load_recipe("300w-cpu", ["nosuch.key=3"])
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_recipe("300w-cpu", ["student.epochs"])
    bad = tmp_path / "r.yaml"
    bad.write_text("student: {arch: x, lr: [1\n")
    with pytest.raises(ConfigError, match="r.yaml"):
        load_recipe(bad)
    bad.write_text("student:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_recipe(bad)


def test_split_keeps_every_copy_of_a_face_together():
    fake = SimpleNamespace(face_index=np.repeat(np.arange(20), 3))
    train_idx, val_idx = split_faces(fake, 0.2, seed=0)
    train_faces, val_faces = set(fake.face_index[train_idx]), set(fake.face_index[val_idx])
    assert len(val_faces) == 4 and not train_faces & val_faces and len(train_faces) == 16
    assert len(train_idx) == 16 * 3 and len(val_idx) == 4  # validation on copy 0 only
    assert all(i % 3 == 0 for i in val_idx)
    again = split_faces(fake, 0.2, seed=0)
    np.testing.assert_array_equal(again[1], val_idx)
    assert split_faces(fake, 0.0, seed=0)[1].size == 0


# ---------------------------------------------------------------- DDP


@pytest.mark.slow
def test_ddp_two_cpu_processes(env):
    out = env.runs / "ddp"
    cmd = [sys.executable, "-m", "kdlandmarks", "train", "teacher", "--kind", "tough", "--store", str(env.store),
           "--out", str(out), *TINY, "--set", "trainer.strategy=ddp", "--set", "trainer.devices=2",
           "--set", "trainer.accelerator=cpu", "--set", "trainer.log_every_n_steps=1"]
    envvars = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=envvars, cwd=env.base)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "model.pt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    summary = json.loads((out / "summary.json").read_text())
    # 10 training samples over 2 ranks: 5 each, batches of 4, the ragged one dropped -> 1 step per epoch
    assert summary["steps"] == 1 and summary["epochs_completed"] == 1
    assert np.isfinite(summary["last_val_nme"])
    losses = [float(r["train_loss_step"]) for r in read_metrics(out) if r.get("train_loss_step")]
    assert losses and all(np.isfinite(losses))
    model, info = load_model(out / "model.pt")
    assert info.num_points == 68 and all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("override", ["student.epochs=1.5", "student.epochs=true", "data.batch_size=.inf",
                                      "student.epochs=2.5e0"])
def test_int_fields_refuse_fractions(override):
    with pytest.raises(ConfigError, match="not a valid int"):
        load_recipe("300w-cpu", [override])
    assert load_recipe("300w-cpu", ["student.epochs=2.0"]).student.epochs == 2  # a whole float is fine


def test_teacher_cache_waiting_rank_stops_when_rank_zero_failed(env, monkeypatch, tmp_path):
    """Under DDP the other ranks wait for rank 0's cache; a failure there must end their wait with one line."""
    from kdlandmarks.errors import DataError
    from kdlandmarks.training import teacher_cache

    store = FaceStore(env.store)
    teacher = env.tough / "model.pt"
    monkeypatch.setattr(teacher_cache, "load_model", lambda *a, **k: (_ for _ in ()).throw(MemoryError("boom")))
    with pytest.raises(MemoryError):
        teacher_cache.teacher_outputs(teacher, store, 99, progress=False)  # rank 0: fails, leaves a marker
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(DataError, match="failed on rank 0: MemoryError: boom"):
        teacher_cache.teacher_outputs(teacher, store, 99, progress=False)


def test_logged_invocations_order_and_seconds(tmp_path):
    """metrics.<k>.csv in numeric order (10 after 2), then metrics.csv; the earlier ones' seconds add up."""
    from kdlandmarks.training.run import earlier_training_seconds, logged_invocations

    logs = tmp_path / "logs"
    logs.mkdir()
    for name, seconds in [("metrics.10.csv", 5.0), ("metrics.2.csv", 3.0), ("metrics.1.csv", 2.0),
                          ("metrics.csv", 100.0)]:
        (logs / name).write_text(f"epoch,train_seconds,val_nme\n0,{seconds / 2},\n0,,9.0\n1,{seconds},\n")
    (logs / "metrics.old.csv").write_text("epoch,train_seconds\n0,1000\n")  # not an invocation's log
    assert [p.name for p in logged_invocations(tmp_path)] == ["metrics.1.csv", "metrics.2.csv", "metrics.10.csv",
                                                              "metrics.csv"]
    assert earlier_training_seconds(tmp_path) == pytest.approx(10.0)
    assert earlier_training_seconds(tmp_path / "nowhere") == 0


def test_a_moved_run_resumes_with_its_checkpoint_records(env, l2_run, recwarn):
    """A run folder copied elsewhere and resumed keeps its best-checkpoint records, read in the new folder
    (Lightning alone would drop them with a "dirpath has changed" warning and point into the old one)."""
    out = env.runs / "l2-moved"
    shutil.copytree(l2_run, out)
    assert student(env, out, "--loss", "l2", "--set", "student.lr_decay=0.5", "--set", "student.epochs=2",
                   "--set", "student.select=best-val") == 0
    assert not [w for w in recwarn if "dirpath" in str(w.message)]
    summary = json.loads((out / "summary.json").read_text())
    assert Path(summary["selected_checkpoint"]).parent == out / "checkpoints"
    assert summary["best_val_nme"] is not None


def test_off_a_terminal_each_epoch_is_one_line(env, capsys):
    """With progress on and standard output not a terminal (a log file, CI), no progress bars: one line per
    epoch with the mean training loss, validation NME and time."""
    args = [a for a in TINY if a != "--quiet"]
    assert train("student", "--store", str(env.store), "--out", str(env.runs / "l2-log"), *args,
                 "--loss", "l2", "--set", "student.epochs=2") == 0
    captured = capsys.readouterr()
    epoch_lines = [line for line in captured.out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2
    for k, line in enumerate(epoch_lines, start=1):
        assert re.fullmatch(rf"epoch {k}/2, train loss [0-9.e+-]+, val NME [0-9.]+ %, \d+ s", line), line
    assert "\r" not in captured.out + captured.err and "it/s" not in captured.out + captured.err
