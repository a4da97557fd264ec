"""Every code block of the README runs as pasted: its ```python blocks and its ```bash blocks, in a scratch
folder that sees the repository's bundled data (src/) at the same relative paths, and with `clip.mp4`, the
README's stand-in for a video of the reader's own, made from a bundled photo.

A block the test cannot run (it installs packages, needs the 300-W data set, trains for minutes or serves
until Ctrl-C) is marked in the README, on the line before its fence, with
`<!-- readme-test: skip (the reason) -->`.
"""
from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PHOTO = "src/kdlandmarks/data/300w-sample/lfpw/testset/image_0001.jpg"
SKIP = re.compile(r"<!-- readme-test: skip \((?P<why>[^)]+)\) -->")
FENCE = re.compile(r"^```(?P<lang>\S*)\n(?P<code>.*?)^```$", re.S | re.M)


@dataclass
class Block:
    lang: str
    code: str
    line: int  # of the opening fence, 1-based
    skip: str | None  # why the test does not run it

    @property
    def name(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def readme_blocks(text: str) -> list[Block]:
    blocks = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.fullmatch(before.strip())
        blocks.append(Block(match["lang"], match["code"], text.count("\n", 0, match.start()) + 1,
                            skip["why"] if skip else None))
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
RUN = [b for b in BLOCKS if b.skip is None]


def test_every_block_is_run_or_says_why_not():
    assert {b.lang for b in BLOCKS} <= {"python", "bash"}, [b.name for b in BLOCKS if b.lang not in ("python", "bash")]
    assert [b.lang for b in RUN].count("python") >= 3 and [b.lang for b in RUN].count("bash") >= 1
    assert all(b.skip.strip() for b in BLOCKS if b.skip is not None)
    # a skip marker sits right before a fence, or it would silently mark nothing
    assert len(SKIP.findall(README.read_text(encoding="utf-8"))) == len([b for b in BLOCKS if b.skip])


def test_the_fresh_machine_test_command_is_what_ci_runs():
    """.ci/run calls the README's test command verbatim."""
    fresh = BLOCKS[0].code.splitlines()
    test_command = next(line for line in fresh if "pytest" in line).split("#")[0].strip()
    assert test_command in (REPO / ".ci" / "run").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder where the README's relative paths resolve: src/ of the repository, and a short clip.mp4."""
    import cv2

    root = tmp_path_factory.mktemp("readme")
    (root / "src").symlink_to(REPO / "src", target_is_directory=True)
    photo = cv2.imread(str(REPO / PHOTO))
    h, w = photo.shape[:2]
    writer = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    for shift in range(6):  # the face drifts a little, as in a real clip
        writer.write(np.roll(photo, 2 * shift, axis=1))
    writer.release()
    return root


@pytest.mark.parametrize("block", [b for b in RUN if b.lang == "python"], ids=lambda b: b.name)
def test_python_block_runs(block, scratch, monkeypatch):
    import cv2

    real_capture = cv2.VideoCapture
    # the webcam example's camera 0 is the clip here; everything else is as a reader runs it
    monkeypatch.setattr(cv2, "VideoCapture", lambda source, *a: real_capture(
        str(scratch / "clip.mp4") if source == 0 else source, *a))
    monkeypatch.chdir(scratch)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block.code, block.name, "exec"), {"__name__": "__readme__"})
    assert printed.getvalue().strip(), f"{block.name} printed nothing"


@pytest.mark.parametrize("block", [b for b in RUN if b.lang == "bash"], ids=lambda b: b.name)
def test_bash_block_runs(block, scratch):
    # `kdlandmarks` is the console script of this interpreter's installation
    script = f'kdlandmarks() {{ "{sys.executable}" -m kdlandmarks "$@"; }}\nset -euo pipefail\n{block.code}'
    done = subprocess.run(["bash", "-c", script], cwd=scratch, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    if "predict" in block.code:
        out = scratch / "predictions"
        assert (out / "image_0001.json").is_file() and (out / "image_0001_landmarks.jpg").is_file()
        assert len(list(out.glob("*.json"))) >= 12  # the bundled test folder, one JSON per photo
        frames = [line for line in (out / "clip.jsonl").read_text().splitlines() if line.startswith('{"frame"')]
        assert len(frames) == 6 and all('"landmarks"' in line for line in frames)  # one line per frame, a face each


DOCS = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "results" / "README.md"]
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def heading_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))  # a '# comment' in a code block is no heading
    return ({heading_anchor(m[1]) for m in re.finditer(r"^#+ (.+)$", text, re.M)}
            | set(re.findall(r'<a id="([^"]+)"></a>', text)))  # explicit anchors


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_reach_a_file_and_heading(page):
    broken = []
    for match in LINK.finditer(FENCE.sub("", page.read_text(encoding="utf-8"))):
        target = match["target"]
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists() or (anchor and anchor not in anchors(where)):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"
