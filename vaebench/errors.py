"""The expected failures, one class each, in a module that imports nothing.

The CLI turns each into one line and an exit code without importing the heavy modules that
raise them (so that `vaebench download` does not load, and its DVC stage does not depend on,
the training code).
"""


class ConfigError(ValueError):
    """A bad value in params.yaml or on the command line; the message names the key."""


class DataError(RuntimeError):
    """The data could not be fetched, failed a check, or is unreadable; the message says which file."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or for another configuration."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


class NumericsError(RuntimeError):
    """MKL runs in a mode whose results depend on the thread count."""


class ReportError(RuntimeError):
    """An input of the report is missing or does not fit the grid; the message names the file."""
