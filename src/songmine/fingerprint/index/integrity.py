"""Checking a whole index and repairing what is damaged: what ``songmine verify [--repair]`` runs.

Everyday use checks cheaply (a segment's header, footer and block table when
it is opened, the rest of a big one as lookups touch it); :func:`verify_index`
checks everything once and says what is damaged and what to do. A repair
keeps every intact part: it drops damaged segments and forgets the tracks
whose postings they held, tombstones tracks whose profile or payload is damaged or whose
postings disagree with the catalogue, and returns the files of those tracks,
for indexing again (``songmine index`` adds them back). A damaged catalogue
cannot be repaired in place: the index is rebuilt from the music.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import IndexCorruptError
from .schema import CATALOG_NAME, STATUS_OK, STATUS_REMOVED
from .store import Finding, Index

__all__ = ["IntegrityReport", "verify_index"]


@dataclass
class IntegrityReport:
    """What :func:`verify_index` found (and, with ``repair``, did).

    ``problems``: ``{"part", "problem"}`` per finding; ``affected``: the tracks
    whose data is damaged or lost (``{"track_id", "path"}``), to index again;
    ``unchecked``: parts written before checksums existed (read as they are;
    ``songmine compact`` rewrites segments with checksums); ``recovery``: what
    to do, or None when all is well.
    """

    index: str
    ok: bool
    problems: list[dict] = field(default_factory=list)
    affected: list[dict] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    recovery: str | None = None
    repairable: bool = True
    repaired: bool = False
    n_segments: int = 0
    n_tracks: int = 0
    bytes_checked: int = 0
    seconds: float = 0.0


def verify_index(path: str | os.PathLike[str], *, repair: bool = False) -> IntegrityReport:
    """Check every part of the index at ``path``; with ``repair``, drop the damaged parts.

    Holds the index's write lock meanwhile (a stable state to check; writers
    wait). Never raises for damage, which is what it reports.

    Raises
    ------
    IndexFormatError
        No index at ``path``, or one of a newer format.
    """
    t0 = time.perf_counter()
    path = Path(path)
    try:
        ix = Index(path, _salvage=True)
    except IndexCorruptError as exc:  # the catalogue cannot even be read
        return IntegrityReport(
            str(path),
            False,
            [_catalogue_problem(path, exc)],
            recovery=_rebuild(path),
            repairable=False,
            seconds=time.perf_counter() - t0,
        )
    with ix:
        try:
            with ix._writing():
                ix._reload()
                findings = ix._check()
                report = _report(ix, findings)
                if repair and report.repairable and not report.ok:
                    _repair(ix, findings)
                    report.repaired = True
                    report.recovery = _after_repair(path, report)
        except IndexCorruptError as exc:  # a damaged catalogue page met on the way
            report = IntegrityReport(
                str(path), False, [_catalogue_problem(path, exc)], recovery=_rebuild(path), repairable=False
            )
    report.seconds = time.perf_counter() - t0
    return report


def _catalogue_problem(path: Path, exc: IndexCorruptError) -> dict:
    text = str(exc).split("; to recover")[0].removeprefix(f"{path / CATALOG_NAME}: ")
    return {"part": CATALOG_NAME, "problem": text}


def _report(ix: Index, findings: list[Finding]) -> IntegrityReport:
    segs = ix._segments
    rep = IntegrityReport(
        str(ix.path),
        not findings,
        problems=[{"part": f.part, "problem": f.problem} for f in findings],
        n_segments=len(segs) + len(ix.damaged),
        n_tracks=ix.n_tracks,
        bytes_checked=sum(
            _size(ix.path / "segments" / f) for f in [*(s.file for s in segs if s.data.sums), *ix.damaged]
        ),
    )
    rep.unchecked = [f"segments/{s.file}" for s in segs if s.data.sums is None]
    n_old = ix._conn.execute("SELECT COUNT(*) FROM profiles WHERE checksum IS NULL").fetchone()[0]
    if n_old:
        rep.unchecked.append(f"{n_old} profile(s)")
    ids = sorted({t for f in findings for t in f.tracks})
    rep.affected = [{"track_id": t, "path": ix._tracks[t].path} for t in ids if t in ix._tracks]
    if any(f.kind == "catalogue" for f in findings):
        rep.repairable = False
        rep.recovery = _rebuild(ix.path)
    elif findings:
        rep.recovery = (
            f"run `songmine verify --index {ix.path} --repair`: it drops the damaged parts and "
            f"indexes the files of the {len(rep.affected)} affected track(s) again"
        )
    return rep


def _repair(ix: Index, findings: list[Finding]) -> None:
    """Drop damaged and orphan segments, forget the tracks they held, tombstone the other affected tracks."""
    damaged_files = {f.part.removeprefix("segments/") for f in findings if f.kind in ("segment", "orphan")}
    lost = {t for f in findings if f.kind == "lost" for t in f.tracks}
    tombstone = {t for f in findings if f.kind in ("profile", "payload", "track") for t in f.tracks} - lost
    registered = {s.file for s in ix._segments} | set(ix.damaged)
    with ix._transaction() as conn:
        conn.executemany("DELETE FROM segments WHERE file = ?", [(f,) for f in damaged_files & registered])
        conn.executemany("DELETE FROM tracks WHERE track_id = ?", [(t,) for t in lost])
        conn.executemany("DELETE FROM profiles WHERE track_id = ?", [(t,) for t in lost | tombstone])
        conn.executemany("DELETE FROM payloads WHERE track_id = ?", [(t,) for t in lost | tombstone])
        conn.executemany(
            "UPDATE tracks SET status = ? WHERE track_id = ? AND status = ?",
            [(STATUS_REMOVED, t, STATUS_OK) for t in tombstone],
        )
        ix._mark_transient(conn, damaged_files, "retired")
    ix._delete_retired(sorted(damaged_files))
    ix._reload()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _rebuild(path: Path) -> str:
    return (
        f"the catalogue cannot be repaired in place: move {path} away and rebuild the index with "
        f"`songmine index <music folders> --index {path}`"
    )


def _after_repair(path: Path, rep: IntegrityReport) -> str | None:
    if not rep.affected:
        return None
    return (
        f"index the {len(rep.affected)} affected file(s) again: `songmine index <music folders> --index {path}` "
        "(only what is missing is added)"
    )
