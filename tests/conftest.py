"""Test-wide settings. The library finds a full 300-W copy only where $KDLANDMARKS_300W names it; the
tests also look beside the checkout (../shared/data/300w, where this project's machines keep it)."""
import os
from pathlib import Path

_SHARED_300W = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "300w"
if "KDLANDMARKS_300W" not in os.environ and (_SHARED_300W / "lfpw" / "testset").is_dir():
    os.environ["KDLANDMARKS_300W"] = str(_SHARED_300W)
