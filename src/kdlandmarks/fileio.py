"""Atomic file writes: every output of the package appears whole or not at all.

A writer fills a temporary file beside the target (same folder, so the final rename never crosses a
file system) and `os.replace` moves it onto the target only once it is complete; on any error the
temporary file is removed and an existing target is left untouched. The final file gets the usual
permissions of a newly created file (0666 less the umask), not mkstemp's private 0600.
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json"]


def _create_temp(target: Path) -> Path:
    # Created by os.open with mode 0o666, so the kernel applies the umask (or a default ACL) exactly
    # as for a file written in place; querying the umask would need os.umask, which is not thread-safe.
    # The target's suffix is kept last: writers such as np.save, np.savez and cv2.VideoWriter choose
    # (or append) a format by it.
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp{target.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{target}: no free temporary name beside it")


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
