"""The optional parts of songmine, and the one rule for saying which extra a missing package comes with.

``pip install songmine`` installs the core: decoding, the landmark index,
``identify``, ``dedupe``, ``scan``, ``verify``, ``pairs``, the evaluation harness
(numpy, scipy, av, soxr, soundfile, pydantic, typer, rich, platformdirs).
The rest comes with an extra (``pyproject.toml`` lists the same packages;
a test holds the two together):

* ``catalog`` — FMA tables (``catalog merge``, ``catalog cache``): pandas, pyarrow;
* ``features`` — FMA audio features and the ``seed`` method: librosa, resampy, mutagen (+ catalog);
* ``cluster`` — ``cluster choose-k`` / ``cluster run``: scikit-learn, matplotlib, jinja2 (+ catalog);
* ``server`` — ``serve``: fastapi, uvicorn, python-multipart;
* ``spark`` — the Spark engines: pyspark (+ catalog);
* ``eval`` — the real-world conditions and plot of ``eval``: pedalboard, pyroomacoustics, matplotlib.

A module or verb that needs an extra calls :func:`require` before it imports
anything from it, so that a missing package is one line naming the extra
(:class:`~songmine.errors.MissingExtraError`; the CLI exits 2), never a
traceback.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback

from .errors import MissingExtraError, one_line

__all__ = ["EXTRAS", "DISTRIBUTIONS", "require", "missing", "install_hint", "extra_of", "as_missing_extra"]

#: extra -> the top-level modules it provides (import names), in the order messages name them.
EXTRAS: dict[str, tuple[str, ...]] = {
    "catalog": ("pandas", "pyarrow"),
    "features": ("librosa", "resampy", "mutagen", "pandas", "pyarrow"),
    "cluster": ("sklearn", "matplotlib", "jinja2", "pandas", "pyarrow"),
    "server": ("fastapi", "fastapi_offline", "uvicorn", "multipart"),
    "spark": ("pyspark", "pandas", "pyarrow"),
    "eval": ("pedalboard", "pyroomacoustics", "matplotlib"),
}

#: import name -> distribution name (what ``pip`` calls it), where they differ.
DISTRIBUTIONS: dict[str, str] = {
    "sklearn": "scikit-learn",
    "fastapi_offline": "fastapi-offline",
    "multipart": "python-multipart",
}


def install_hint(extra: str) -> str:
    """``pip install 'songmine[extra]'``: the command that installs ``extra``."""
    return f"pip install 'songmine[{extra}]'"


def _importable(module: str) -> bool:
    if sys.modules.get(module, False) is None:  # blocked on purpose (``sys.modules[name] = None``)
        return False
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken package, or an import hook that refuses it
        return False


def missing(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The distributions of ``extra`` (or of its ``modules`` only) that cannot be imported."""
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    wanted = EXTRAS[extra] if modules is None else modules
    return [DISTRIBUTIONS.get(m, m) for m in wanted if not _importable(m)]


def require(
    extra: str,
    what: str,
    *,
    modules: tuple[str, ...] | None = None,
    error: type[MissingExtraError] = MissingExtraError,
) -> None:
    """Return when ``extra`` (or just its ``modules``) is installed; else raise MissingExtraError.

    ``what`` names what needs it, as the user sees it: ``"songmine cluster run"``,
    ``"songmine.cluster.analysis"``, ``"the seed method"``. ``error`` is the class raised
    (a subclass of MissingExtraError, e.g. the evaluation's ``EvalExtraMissing``).

    Raises
    ------
    MissingExtraError
        One line: ``<what> needs the <extra> extra: pip install 'songmine[<extra>]' (missing: ...)``.
    """
    gone = missing(extra, modules)
    if gone:
        raise error(
            f"{what} needs the {extra} extra: {install_hint(extra)} (missing: {', '.join(gone)})",
            extra=extra,
            missing=tuple(gone),
        )


def extra_of(module: str | None) -> str | None:
    """The first extra that provides top-level module ``module`` (``"sklearn.base"`` → ``"cluster"``)."""
    if not module:
        return None
    top = module.partition(".")[0]
    return next((e for e, mods in EXTRAS.items() if top in mods), None)


def _frame_modules(exc: BaseException) -> list[str]:
    """The top-level modules of the frames ``exc`` went through, outermost first."""
    return [f.f_globals.get("__name__", "").partition(".")[0] for f, _ in traceback.walk_tb(exc.__traceback__)]


def as_missing_extra(
    exc: ImportError,
    what: str,
    *,
    module: str | None = None,
    error: type[MissingExtraError] = MissingExtraError,
) -> MissingExtraError | None:
    """An ImportError of a package that an extra provides, said as the extra to install; None otherwise.

    The safety net under :func:`require`: an extra's package that is installed
    but fails to import (a broken build), or an import no ``require`` guarded.
    ``module`` is what was being imported (default: the module the error names).
    """
    if isinstance(exc, MissingExtraError):
        return exc
    top = (module or getattr(exc, "name", None) or "").partition(".")[0]
    if extra_of(top) is None:  # raised inside an extra's package (a broken build names no module): the frames say which
        top = next((t for t in _frame_modules(exc) if extra_of(t)), top)
    extra = extra_of(top)
    if extra is None:
        return None
    dist = DISTRIBUTIONS.get(top, top)
    return error(
        f"{what} needs the {extra} extra: {install_hint(extra)} ({dist} cannot be imported: {one_line(exc)})",
        extra=extra,
        missing=(dist,),
    )
