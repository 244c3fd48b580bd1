"""One exception family for the whole library.

The CLI maps every :class:`SongmineError` to a one-line message and exit code 2;
the server maps them to 4xx JSON. Anything else escaping the library is a bug.
"""

from __future__ import annotations

__all__ = [
    "SongmineError",
    "ParameterError",
    "DecodeError",
    "IndexFormatError",
    "IndexCorruptError",
    "MissingExtraError",
    "NotFittedError",
    "DataError",
    "EngineError",
    "ConvergenceWarning",
    "one_line",
]


class SongmineError(Exception):
    """Base class of every error songmine raises on purpose."""


class ParameterError(SongmineError, ValueError):
    """An argument has a wrong value or type (``n_clusters=0``, ``sr=-1``...)."""


class DecodeError(SongmineError):
    """An audio file could not be decoded; the message names the file and why.

    Attributes
    ----------
    path : str | None
        The file that failed, if it came from a file.
    reason : str
        A short machine-friendly reason: ``missing``, ``empty``, ``not-audio``,
        ``no-audio-stream``, ``truncated``, ``zero-length``, ``too-long``.
    """

    def __init__(self, message: str, *, path: str | None = None, reason: str = "undecodable"):
        super().__init__(message)
        self.path = path
        self.reason = reason


class IndexFormatError(SongmineError):
    """An index is missing, of another version, or was built with another config.

    ``reason`` is the machine-friendly reason of an error body: ``"index-format"``
    here, ``"index-damaged"`` and ``"index-too-new"`` for the subclasses.
    """

    reason = "index-format"


class IndexCorruptError(IndexFormatError):
    """A part of an index is damaged: it fails its checksum, or the catalogue is unreadable.

    Never the caller's fault: the server answers it with a 5xx, not a 4xx. The
    message names the damaged part and how to recover (``songmine verify``).

    Attributes
    ----------
    part : str | None
        The damaged part: a segment file, ``"profile of track 12"``, the catalogue.
    reason : str
        ``"index-damaged"`` (the machine-friendly reason of an error body).
    """

    reason = "index-damaged"

    def __init__(self, message: str, *, part: str | None = None):
        super().__init__(message)
        self.part = part


class MissingExtraError(SongmineError, ImportError):
    """A part of songmine needs an optional extra whose packages are not installed.

    The message is one line naming the extra to install (``pip install
    'songmine[cluster]'``); :func:`songmine.extras.require` raises it. An
    ``ImportError`` too, so code that probes an optional import keeps working.

    Attributes
    ----------
    extra : str
        The extra that provides what is missing (``"cluster"``).
    missing : tuple of str
        The distributions that are not installed (``("scikit-learn",)``).
    """

    def __init__(self, message: str, *, extra: str, missing: tuple[str, ...] = ()):
        super().__init__(message)
        self.extra = extra
        self.missing = tuple(missing)
        self.name = self.missing[0] if self.missing else None  # ImportError's: the module not found


class IndexTooNewError(IndexFormatError):
    """An index, or a part of it, written by a newer songmine: not damage, so nothing to repair.

    The message says what to do: upgrade songmine, or rebuild the index with
    this version.
    """

    reason = "index-too-new"


class NotFittedError(SongmineError, ValueError, AttributeError):
    """An estimator was used before ``fit``.

    The builtin bases are scikit-learn's (``ValueError``, ``AttributeError``).
    :class:`songmine.cluster.KMeans` raises a subclass that *is* scikit-learn's
    ``NotFittedError`` too; this module does not import scikit-learn (every
    verb imports it, most need no scikit-learn).
    """


class DataError(SongmineError, ValueError):
    """A table or data file is malformed: missing column, duplicate ids, NaNs..."""


class EngineError(SongmineError, RuntimeError):
    """A compute engine (e.g. Spark) could not be started or reached."""


class ConvergenceWarning(UserWarning):
    """An iterative algorithm stopped before converging, or met an empty cluster."""


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when the message is empty): what a
    one-line error report shows."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
