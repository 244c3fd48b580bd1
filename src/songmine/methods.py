"""The identification methods songmine knows, in one registry used by the index store, ``eval`` and the CLI.

* ``landmark`` — landmark hashes, offset voting and verification (the default);
* ``landmark-memory`` — the same method on an in-memory index (evaluation only);
* ``seed`` — the original course method: onset-peak bit vectors → MinHash → LSH;
* ``sketch`` — MinHash sketches of landmark windows → LSH.

Entries name their parts by ``"module:attribute"`` strings, imported only when
used, so this module imports none of them (they may import it: there is no
cycle): the store reads :attr:`Method.config`, the indexer :attr:`Method.payload`,
the evaluation harness :attr:`Method.identifier`, the CLI :attr:`Method.folder_index`.

Every indexable method keeps its index in the same store
(:class:`songmine.fingerprint.index.Index`: the SQLite catalogue of tracks,
adding, skipping known content by sha256, resuming, checksums): the landmark
method as posting segments, the others as one payload per track.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from .errors import IndexFormatError, ParameterError
from .extras import require

__all__ = [
    "Method",
    "METHODS",
    "DEFAULT_METHOD",
    "get_method",
    "register_method",
    "make_identifier",
    "method_of_config",
    "reference",
    "resolve",
]


@dataclass(frozen=True, slots=True)
class Method:
    """One identification method and where its parts live.

    Attributes
    ----------
    name : str
        What ``--method`` takes.
    summary : str
        One line for ``--help``.
    config : str, class or None
        ``"module:Class"`` (or the class) of the fingerprint config an index of
        this method stores (``to_dict``/``from_dict``); None for methods with no index.
    identifier : str, callable or None
        ``"module:Class"`` (or the factory) whose ``Class(index_path, options)`` is
        the method as the evaluation harness sees it
        (:class:`songmine.evaluation.identifiers.Identifier`); None: not evaluable.
    payload : str or None
        ``"module:function"``: ``function(path, config) -> (duration_s, bytes)``, a
        track's payload, computed in an indexing worker and kept in the store's
        ``payloads`` table; None for the landmark method (posting segments).
    folder_index : str or None
        ``"module:Class"`` that answers queries from an index of this method:
        ``Class.from_store(index, config=None)`` then ``query_file(clip, top=,
        threshold=, max_duration_s=)``; ``Class.load(folder)`` reads the ``.npy`` +
        ``meta.json`` folders older versions wrote. None for the landmark method.
    folder : str or None
        The sub-folder of the index directory that holds this method's index
        (an index directory of its own); None: the index directory itself.
    indexable : bool
        Whether ``songmine index`` / ``identify`` accept the method.
    extra : str or None
        The optional extra (:mod:`songmine.extras`) the method needs; None: the core has it.
    """

    name: str
    summary: str
    config: str | type | None
    identifier: str | Callable[..., Any] | None
    payload: str | None = None
    folder_index: str | None = None
    folder: str | None = None
    indexable: bool = True
    extra: str | None = None

    def require(self) -> None:
        """Raise :class:`~songmine.errors.MissingExtraError` unless the method's extra is installed."""
        if self.extra is not None:
            require(self.extra, f"the {self.name} method")


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "landmark",
            "landmark hashes, offset voting and verification (the default)",
            "songmine.fingerprint.landmarks:FingerprintConfig",
            "songmine.evaluation.identifiers:LandmarkIdentifier",
        ),
        Method(
            "landmark-memory",
            "the landmark method on an in-memory index (evaluation only)",
            "songmine.fingerprint.landmarks:FingerprintConfig",
            "songmine.evaluation.identifiers:MemoryLandmarkIdentifier",
            indexable=False,
        ),
        Method(
            "seed",
            "the original course method: onset-peak bit vectors, MinHash, LSH",
            "songmine.minhash.onset:SeedConfig",
            "songmine.evaluation.identifiers:SeedIdentifier",
            payload="songmine.minhash.onset:seed_payload",
            folder_index="songmine.minhash.onset:SeedIndex",
            folder="seed",
            extra="features",
        ),
        Method(
            "sketch",
            "MinHash sketches of landmark windows, LSH",
            "songmine.minhash.sketch:SketchConfig",
            "songmine.evaluation.identifiers:SketchIdentifier",
            payload="songmine.minhash.sketch:sketch_payload",
            folder_index="songmine.minhash.sketch:SketchIndex",
            folder="sketch",
        ),
    )
}
DEFAULT_METHOD = "landmark"

#: Method names an index written by earlier versions may carry.
_ALIASES = {"landmarks": "landmark"}


def get_method(name: str) -> Method:
    """The registered method called ``name``.

    Raises
    ------
    ParameterError
        No such method (the message lists the known ones).
    """
    m = METHODS.get(_ALIASES.get(name, name))
    if m is None:
        raise ParameterError(f"method {name!r} is unknown; known: {', '.join(METHODS)}")
    return m


def register_method(method: Method) -> None:
    """Add (or replace) a method: an extension's own, or a test's."""
    METHODS[method.name] = method


def resolve(ref: Any) -> Any:
    """Import what a ``"module:attribute"`` reference names (anything else is returned as it is).

    Raises
    ------
    ParameterError
        The module or the attribute is not available in this installation.
    """
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    try:
        return getattr(import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ParameterError(f"{ref} is not available in this installation ({exc})") from exc


def reference(obj: Any) -> str:
    """The ``"module:attribute"`` string of a class or a reference (what an index stores)."""
    return obj if isinstance(obj, str) else f"{obj.__module__}:{obj.__qualname__}"


def method_of_config(config: Any) -> Method:
    """The first registered method whose index stores configs of ``config``'s type.

    Raises
    ------
    ParameterError
        No registered method uses that config class.
    """
    ref = reference(type(config))
    for m in METHODS.values():
        if m.config is not None and reference(m.config) == ref:
            return m
    raise ParameterError(f"config of type {ref} belongs to no registered method (known: {', '.join(METHODS)})")


def stored_config(index: Any, method: str, config: Any, key: Callable[[Any], dict]) -> Any:
    """The config to query the payload index ``index`` (an open store) of ``method`` with.

    ``config`` (if given) must equal the stored one in ``key(config)`` — what the
    payloads were computed with — and is returned (its query-side fields set); else
    the stored config is.

    Raises
    ------
    IndexFormatError
        The store holds another method's index, or was built with another config.
    """
    stored = index.config
    if method_of_config(stored).name != method:
        raise IndexFormatError(f"{index.path} is an index of the {index.method} method, not {method}")
    if config is None:
        return stored
    want, have = key(config), key(stored)
    if want != have:
        diff = {k: (v, have.get(k)) for k, v in want.items() if have.get(k) != v}
        raise IndexFormatError(f"{method} index was built with another config (query vs index): {diff}")
    return config


def make_identifier(name: str, *, index_path: Path | None = None, options: Mapping[str, str] | None = None):
    """The evaluation harness's view of method ``name``, built with ``key=value`` ``options``.

    Raises
    ------
    ParameterError
        Unknown method, one that cannot be evaluated, or one not available in this installation.
    MissingExtraError
        The method needs an extra that is not installed.
    """
    method = get_method(name)
    if method.identifier is None:
        raise ParameterError(f"method {name!r} cannot be evaluated")
    method.require()
    factory: Callable[..., Any] = resolve(method.identifier)
    return factory(index_path, dict(options or {}))
