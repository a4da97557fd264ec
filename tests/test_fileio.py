"""Atomic writes: whole file or nothing, no temporary left behind, usual permissions, suffix kept for writers."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from kdlandmarks.fileio import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def test_writes_create_parents_and_leave_nothing_else(tmp_path):
    path = tmp_path / "a" / "b" / "x.txt"
    assert atomic_write_text(path, "héllo\n") == path
    assert path.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    atomic_write_json(tmp_path / "a" / "m.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "a" / "m.json").read_text()) == {"k": [1, 2]}
    assert (tmp_path / "a" / "m.json").read_text().endswith("]\n}\n")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b", "m.json"]
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["x.txt"]


def test_failure_keeps_old_target_and_removes_temp(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(path) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C too
        with atomic_path(tmp_path / "new.bin") as tmp:
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_temp_is_hidden_beside_target_and_keeps_its_suffix(tmp_path):
    with atomic_path(tmp_path / "cache.npy") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".cache.npy.") and tmp.suffix == ".npy"
        assert tmp.is_file() and tmp.stat().st_size == 0
        np.save(tmp, np.arange(3))  # np.save appends .npy unless the name already ends in it
    np.testing.assert_array_equal(np.load(tmp_path / "cache.npy"), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["cache.npy"]


@pytest.mark.parametrize("write", [
    lambda p: atomic_write_text(p, "x"),
    lambda p: atomic_write_bytes(p, b"x"),
    lambda p: atomic_write_json(p, {}),
])
def test_final_mode_follows_the_umask_not_mkstemp(tmp_path, umask_027, write):
    path = tmp_path / "out.file"
    write(path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask_027 == 0o640
    path.chmod(0o600)  # overwriting gives a new file's mode again
    write(path)
    assert path.stat().st_mode & 0o777 == 0o640


def test_default_umask_mode_for_writers_that_reopen_the_temp(tmp_path):
    with atomic_path(tmp_path / "w.bin") as tmp:
        with open(tmp, "wb") as f:
            f.write(b"abc")
    assert (tmp_path / "w.bin").stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_shipped_writers_use_normal_permissions(tmp_path, umask_027):
    """.pts outputs and model files came out 0600 with mkstemp."""
    from kdlandmarks.data.datasets.pts import write_pts
    from kdlandmarks.models.backbones import ModelInfo, create_model, save_model

    write_pts(tmp_path / "f.pts", np.zeros((3, 2)))
    info = ModelInfo(arch="mobilenetv2_050", num_points=5, input_size=32)
    save_model(tmp_path / "m.pt", create_model("mobilenetv2_050", 5), info)
    for name in ("f.pts", "m.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pts", "m.pt"]


def test_replacing_a_directory_fails_cleanly(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "d", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and Path(tmp_path / "d").is_dir()
