"""Errors that reach the user as one clear line (the CLI prints ``str(error)`` and exits non-zero)."""


class AdcutError(Exception):
    """Base class: anything adcut reports to the user without a traceback."""


class AudioError(AdcutError):
    """A file could not be decoded or encoded (missing, empty, not audio, corrupt, truncated)."""


class LabelError(AdcutError):
    """A label file or label list is invalid; the message names the file and line."""


class DatasetError(AdcutError):
    """A dataset folder is missing, incomplete, or was built with other settings."""


class ModelError(AdcutError):
    """A checkpoint is missing, unreadable, or does not fit the data it is used on."""


class OutputError(AdcutError):
    """An output could not be written (full disk, no permission, would overwrite an input)."""


class CopyUnsupported(AdcutError):
    """A cut's copy path cannot handle this file; the caller falls back to re-encoding the whole episode."""
