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


def exit_code(e: BaseException) -> int | None:
    """How a command ends on `e`: 2 for bad usage or input, 1 for a run that failed, None for anything
    unexpected (a bug: let its traceback show). One table for the CLI and the stages' entry points."""
    if isinstance(e, (ConfigError, CheckpointError)):
        return 2
    if isinstance(e, RuntimeError):  # DataError, TrainingDiverged, NumericsError, ReportError, torch's own
        return 1
    return None


def one_line(e: BaseException) -> str:
    """The message a command prints for `e`: a diverged run's first line (the rest is the loss's detail)."""
    return str(e).splitlines()[0] if isinstance(e, TrainingDiverged) else str(e)
