"""Exception types: every user-facing failure is one of these, so the CLI can print one line and exit non-zero."""


from __future__ import annotations

from collections.abc import Callable, Iterable


class KDLandmarksError(Exception):
    """Base class of all errors the CLI reports as a one-line message.

    A message speaks the library's terms. Where it names an argument of the function that was called, it
    writes it as `{name}` and lists the name in `parameters`: str() shows the Python name (`input_size`),
    and a front end shows its own name for it (`worded`: the CLI's `--size`).
    """

    def __init__(self, message: str = "", *, parameters: Iterable[str] = ()) -> None:
        self.template = message
        self.parameters = tuple(parameters)
        super().__init__(self.worded(str))

    def worded(self, name_of: Callable[[str], str]) -> str:
        """The message with each parameter written as `name_of(parameter)`."""
        text = self.template
        for name in self.parameters:
            text = text.replace("{" + name + "}", name_of(name))
        return text


class DataError(KDLandmarksError):
    """A dataset file, folder, image or annotation is missing, unreadable or invalid."""


class ConfigError(KDLandmarksError):
    """A configuration file or option is unknown, malformed or inconsistent."""


class ModelError(KDLandmarksError):
    """A checkpoint or exported model is missing, corrupt or incompatible with the request."""


class FlipTestError(ConfigError):
    """Flip test was asked for with a landmark scheme that has no flip pairs (or cannot be found)."""


class MissingExtraError(KDLandmarksError, ImportError):
    """A feature needs an optional extra (torch & co.: `pip install 'kdlandmarks[train]'`) that is not
    installed. Also an ImportError, so code that falls back when a package is absent keeps working."""
