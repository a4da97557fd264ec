"""Atomic file writes: every output of the package appears whole or not at all.

A writer fills a temporary file beside the target (same folder, so the final rename never crosses a
file system) and `os.replace` moves it onto the target only once it is complete; on any error the
temporary file is removed and an existing target is left untouched. The final file gets the usual
permissions of a newly created file (0666 less the umask), not mkstemp's private 0600.

A temporary file is named `.<target name>.<pid>-<8 hex>.tmp<suffix>`. A process that is killed outright
(SIGKILL, power loss) cannot remove it, so the first write into a folder also removes the temporary
files there whose process is gone (and temporary files of the older `.<name>.<8 hex>.tmp<suffix>` form
older than an hour). `terminate_raises()` turns SIGTERM into SystemExit, so that a terminated command
removes its temporary files as Ctrl-C (KeyboardInterrupt) does.
"""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "output_folder",
           "check_writable", "terminate_raises", "remove_stale_temps"]

# `.<name>.<pid>-<8 hex>.tmp<suffix>`, plus anything a writer derives from it (`....tmp.onnx.pre.onnx`);
# the older form had no pid.
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.tmp(?P<rest>.*)")
LEGACY_TEMP_AGE_S = 3600.0  # a pid-less temporary file older than this is taken to be stale
_swept: set[str] = set()  # folders already cleared of stale temporary files by this process
_lock = threading.Lock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # alive under another user / not a pid at all
        return True
    return True


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files that killed writers left in `folder`; returns what was removed.

    A temporary file counts as stale when the process that made it is gone (or, for the pid-less names of
    earlier versions, when it is older than LEGACY_TEMP_AGE_S); this process's own are kept.
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None or not match["rest"].startswith(Path(match["name"]).suffix):
            continue
        pid = match["pid"]
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if pid is not None:
                stale = int(pid) != os.getpid() and not _pid_alive(int(pid))
            else:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_TEMP_AGE_S
            if stale:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _sweep_once(folder: Path) -> None:
    # Once per folder and process: a folder run writes thousands of files into one folder.
    key = str(folder.resolve())
    with _lock:
        if key in _swept:
            return
        _swept.add(key)
    remove_stale_temps(folder)


def _create_temp(target: Path) -> Path:
    # Created by os.open with mode 0o666, so the kernel applies the umask (or a default ACL) exactly
    # as for a file written in place; querying the umask would need os.umask, which is not thread-safe.
    # The target's suffix is kept last: writers such as np.save, np.savez and cv2.VideoWriter choose
    # (or append) a format by it.
    _sweep_once(target.parent)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{target.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                # name the folder, not a hidden temporary file the user never asked for
                raise type(exc)(exc.errno, f"{exc.strerror} (cannot create files in this folder)",
                                str(target.parent)) from None
            raise
        os.close(fd)
        return tmp
    raise FileExistsError(f"{target}: no free temporary name beside it")


def output_folder(path: str | Path, option: str = "out", create: bool = True) -> Path:
    """Check (and with `create`, make) the output folder `path`; DataError when it cannot be one.

    `option` is the caller's parameter that gave `path` (its errors name it). A file in the way is named
    ("out must be a folder"), as is a folder that is not writable; with create=False nothing is made, so a
    command can check its output folder before it starts its work.
    """
    from kdlandmarks.errors import DataError

    path = Path(path)
    existing = next((p for p in [path, *path.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "it is a file" if existing == path else f"{existing} is a file"
        raise DataError(f"{{{option}}} {path}: {{{option}}} must be a folder, and {where}", parameters=(option,))
    if create:
        path.mkdir(parents=True, exist_ok=True)
        existing = path
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        which = "this folder" if existing == path else f"folder {existing}"
        raise DataError(f"{{{option}}} {path}: {which} is not writable", parameters=(option,))
    return path


def check_writable(target: str | Path) -> Path:
    """Fail now, as an atomic write of `target` would (OSError naming the folder), before any long work:
    the folder is created if needed, and a temporary file is made beside `target` and removed at once."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _create_temp(target).unlink()
    return target


@contextmanager
def terminate_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises SystemExit(143) in the main thread, so that `finally` blocks and
    atomic_path remove their temporary files as they do on Ctrl-C. Elsewhere (another thread, a platform
    without SIGTERM) it does nothing."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (an empty file already); on success it replaces `path`.

    The parent folder is created if needed. Write the temporary file by name (torch.save, onnx.save,
    cv2.VideoWriter, ...); when the block raises, it is removed and `path` is not touched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (UTF-8 by default); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, data: Any, indent: int | None = 1) -> Path:
    """Write `data` as JSON text (ending in a line break) to `path` atomically; returns the path."""
    return atomic_write_text(path, json.dumps(data, indent=indent) + "\n")
