"""Exceptions raised by the library.

Every error a user can cause is a :class:`LandscapeError`; the CLI turns it into one line on
stderr and a non-zero exit code. Messages name the offending value and what would be accepted.
"""

from __future__ import annotations


class LandscapeError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigError(LandscapeError):
    """A config file, a flag or an override is missing, unknown or of the wrong type."""


class RegistryError(LandscapeError):
    """An unknown dataset, model or loss name, or a user spec that cannot be loaded."""


class DataError(LandscapeError):
    """A dataset is missing, unreadable or does not fit the task."""


class ModelError(LandscapeError):
    """A model cannot be built, or its output does not fit the data or the loss."""


class CheckpointError(LandscapeError):
    """A checkpoint is missing, corrupt, unsafe, or does not fit the architecture."""


class DirectionError(LandscapeError):
    """A direction file is missing, corrupt, or made for another model."""


class GridError(LandscapeError):
    """A grid specification is malformed or impossible."""


class SurfaceFileError(LandscapeError):
    """A surface file is corrupt, locked, or was made with different settings."""


class HessianError(LandscapeError):
    """A Hessian problem or a curvature computation was set up with invalid values."""


class TrainingDiverged(LandscapeError):
    """The training loss became NaN or inf."""


class RunFolderError(LandscapeError):
    """The run folder cannot be created or written (a file in the way, a full disk)."""


class AnimationError(LandscapeError):
    """An animation cannot be made: a run folder lacks a file, an option is out of range, no ffmpeg for MP4."""


class MissingExtraError(LandscapeError):
    """An optional extra (a package the default install leaves out) is needed and not installed."""


class LandscapeWarning(UserWarning):
    """Base class of the warnings the library gives on purpose (a result that is computed but suspect)."""


class FlatSurfaceWarning(LandscapeWarning):
    """Every point of a surface equals the origin to rounding: the directions do not change the loss."""
def install_hint(extra: str) -> str:
    """``pip install "<distribution>[extra]"`` with the name this package was installed under."""
    from importlib.metadata import packages_distributions

    names = packages_distributions().get("landscape") or ["filternorm-landscape"]
    return f'pip install "{names[0]}[{extra}]"'
