"""Exception types: every user-facing failure is one of these, so the CLI can print one line and exit non-zero."""


class KDLandmarksError(Exception):
    """Base class of all errors the CLI reports as a one-line message."""


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
