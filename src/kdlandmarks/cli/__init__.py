"""The `kdlandmarks` command line: a thin layer over the Python API.

Each module in this package that defines `register(subparsers)` adds one command; its handler is set
with `parser.set_defaults(func=...)` and receives the parsed arguments. Handlers import heavy modules
lazily so that the CLI starts fast. Every KDLandmarksError (and file-system error) becomes a one-line
message on stderr and exit status 2, never a traceback; so does a package of the `train` extra that is
not installed (the line names the pip command). Ctrl-C exits 130 and SIGTERM 143, both after
removing the temporary files of unfinished writes.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from kdlandmarks.errors import KDLandmarksError


def build_parser() -> argparse.ArgumentParser:
    from kdlandmarks import __version__

    parser = argparse.ArgumentParser(
        prog="kdlandmarks",
        description="Facial landmark detection with knowledge distillation (KD-Loss, Fard & Mahoor 2022).",
    )
    parser.add_argument("--version", action="version", version=f"kdlandmarks {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{__name__}.{module.name}")
        if hasattr(mod, "register"):
            mod.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from kdlandmarks.fileio import terminate_raises

    try:
        with terminate_raises():  # SIGTERM unwinds like Ctrl-C: no temporary file is left behind
            result = args.func(args)
    except KDLandmarksError as exc:
        print(f"kdlandmarks: error: {cli_message(exc)}", file=sys.stderr)
        return 2
    except ImportError as exc:  # a command reached torch & co. on the default install
        from kdlandmarks.extras import train_extra_message, train_module_missing

        module = train_module_missing(exc)
        if module is None:
            raise
        print(f"kdlandmarks: error: {train_extra_message(_command_name(args), [module])}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that is missing, taken by a file, not writable, a full disk, ...
        where = f": {exc.filename}" if exc.filename is not None else ""
        print(f"kdlandmarks: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdlandmarks: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


# Library parameters whose flag is not "--" + the parameter's (last dotted) name with dashes (argparse's rule).
FLAG_OF_PARAMETER = {"input_size": "--size", "max_pixels": "--max-megapixels", "out_dir": "--out",
                     "teachers.online": "--online-teachers", "formats": "--format"}


def flag_of(parameter: str) -> str:
    """The command-line flag that sets a library parameter (`data.store`: --store)."""
    return FLAG_OF_PARAMETER.get(parameter, "--" + parameter.rpartition(".")[2].replace("_", "-"))


def cli_message(exc: BaseException) -> str:
    """An error's message with the library's parameter names written as the flags that set them."""
    return exc.worded(flag_of) if isinstance(exc, KDLandmarksError) else str(exc)


def _command_name(args: argparse.Namespace) -> str:
    """`kdlandmarks train student`, `kdlandmarks export`, ...: the command that was run, for messages."""
    words = [getattr(args, "command", None), getattr(args, "role", None)]
    return " ".join(["kdlandmarks"] + [w for w in words if isinstance(w, str)])


if __name__ == "__main__":
    sys.exit(main())
