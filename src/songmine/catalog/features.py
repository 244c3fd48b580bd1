"""The 518 FMA audio features of one file, the way FMA computed them, several times faster.

Public API
----------
* :func:`extract` — one file or array → ``np.ndarray[(518,), float32]`` in
  :data:`FEATURE_COLUMNS` order (pure: safe to map over files in Spark).
* :func:`extract_folder` — many files → (DataFrame, failures), parallel over
  processes, resumable, with a progress callback (:mod:`songmine.catalog.batch`).
* :func:`write_features_csv` — the exact three-header ``features.csv`` layout.

How: :mod:`songmine.catalog.decoding` reads the samples as FMA's code did, and
:mod:`songmine.catalog.librosa050` computes the eleven families with librosa
0.5.0's semantics and summarises them.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ParameterError
from .batch import Failure, extract_folder, write_features_csv
from .decoding import DECODERS, decode
from .librosa050 import extract_families, summarize
from .schema import FEATURE_COLUMNS

__all__ = [
    "FEATURE_COLUMNS",
    "N_FEATURES",
    "DECODERS",
    "Failure",
    "decode",
    "extract",
    "extract_families",
    "summarize",
    "extract_folder",
    "write_features_csv",
]

#: Number of feature columns (74 dimensions × 7 statistics).
N_FEATURES = len(FEATURE_COLUMNS)


def extract(source: str | os.PathLike[str] | np.ndarray, *, sr: int | None = None, decoder: str = "pyav") -> np.ndarray:
    """The 518 FMA features of one file or signal.

    Parameters
    ----------
    source : path or np.ndarray [shape=(n,)]
        An audio file (decoded at its native rate, like FMA) or a mono signal.
    sr : int, optional
        Sample rate of ``source`` when it is an array (required then); ignored
        for files.
    decoder : {"pyav", "ffmpeg"}
        Who decodes a compressed file (:func:`decode`).

    Returns
    -------
    np.ndarray [shape=(518,), dtype=float32]
        In :data:`FEATURE_COLUMNS` order (feature, statistics, number).

    Raises
    ------
    DecodeError
        The file cannot be decoded.
    ParameterError
        Array without ``sr``, not mono, shorter than one 2048-sample frame, non-finite.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(3 * 22050) / 22050
    >>> v = extract((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr=22050)
    >>> v.shape, v.dtype, bool(np.isfinite(v).all())
    ((518,), dtype('float32'), True)
    """
    if isinstance(source, np.ndarray):
        if sr is None or sr <= 0:
            raise ParameterError(f"sr={sr!r}: a positive sample rate is required with an array")
        y = source
    else:
        y, sr = decode(source, decoder=decoder)
    return summarize(extract_families(y, int(sr)))
