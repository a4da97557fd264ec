"""Packaging hook (the metadata is in pyproject.toml): a wheel ships the web app's built page,
kdlandmarks/apps/webpage/ (web/build.mjs writes it; `kdlandmarks web` serves it). When it is not built yet
and npm is available, it is built first (npm ci && npm run build in web/, the versions pinned in
web/package-lock.json); without npm the wheel goes without the page, says so, and `kdlandmarks web` then
says how to build it."""
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
WEB = HERE / "web"
PAGE = HERE / "src" / "kdlandmarks" / "apps" / "webpage"


class BuildPyWithWebPage(build_py):
    def run(self) -> None:
        if not (PAGE / "index.html").is_file() and (WEB / "package.json").is_file():
            npm = shutil.which("npm")
            if npm is None:
                self.announce("warning: npm not found: this build has no web page (kdlandmarks web); "
                              "build it with `cd web && npm ci && npm run build`", level=3)
            else:
                for step in (["ci", "--no-audit", "--no-fund"], ["run", "build"]):
                    subprocess.run([npm, *step], cwd=WEB, check=True)
        super().run()


setup(cmdclass={"build_py": BuildPyWithWebPage})
