"""Exception types: every user-facing failure is one of these, so the CLI can print one line and exit non-zero."""


class KDLandmarksError(Exception):
    """Base class of all errors the CLI reports as a one-line message."""


class DataError(KDLandmarksError):
    """A dataset file, folder, image or annotation is missing, unreadable or invalid."""


class ConfigError(KDLandmarksError):
    """A configuration file or option is unknown, malformed or inconsistent."""


class ModelError(KDLandmarksError):
    """A checkpoint or exported model is missing, corrupt or incompatible with the request."""
