"""Fetch freely licensed real music for the demo and the tests.

The music comes from Debian's archive: game-soundtrack packages are
downloaded with ``apt-get download`` (nothing is installed), unpacked with
``dpkg-deb -x`` and laid out flat::

    DIR/library/<package>__<name>.<ext>   original encodings (ogg, mp3, flac)
    DIR/manifest.csv                      file,package,licence,duration_s
    DIR/debs/, DIR/extract/               caches; licences in extract/<pkg>/usr/share/doc/

Nothing is committed to the repository; the default location is the per-user
cache dir (:func:`songmine.paths.demo_corpus_dir`). Re-running on a complete
directory does nothing.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, exclusive
from ..audio import info
from ..errors import SongmineError

__all__ = ["DemoTrack", "Package", "DEFAULT_PACKAGES", "DemoCorpusError", "fetch", "read_manifest"]

log = logging.getLogger(__name__)


class DemoCorpusError(SongmineError):
    """The demo music could not be fetched (no apt, no network, not root...)."""


@dataclass(frozen=True, slots=True)
class Package:
    """A Debian package and the regex (on the path inside it) selecting its songs."""

    name: str
    pattern: str
    licence: str = ""  # SPDX-like short name, read off the package's copyright file
    raw_pcm_u8_sr: int | None = None  # headerless unsigned 8-bit mono PCM at this rate


#: The demo library: 62 tracks, 3.6 hours, ~220 MB of .debs.
DEFAULT_PACKAGES: tuple[Package, ...] = (
    Package("wesnoth-1.16-music", r"/usr/share/.*/music/.*\.(ogg|mp3|flac|opus|wav)$", "GPL-2+"),
    Package("singularity-music", r"/music/.*\.(ogg|mp3|flac)$", "CC-BY-SA-3.0"),
    Package("asc-music", r"/music/.*\.(ogg|mp3|flac)$", "GPL-2+"),
    Package("xblast-tnt-musics", r"/sounds/xbsng.*\.raw$", "GPL-2", raw_pcm_u8_sr=22050),
)

MIN_DURATION_S = 20.0
_STAMP = ".complete"


@dataclass(frozen=True, slots=True)
class DemoTrack:
    """One row of ``manifest.csv``."""

    file: str
    package: str
    licence: str
    duration_s: float

    def path(self, root: str | os.PathLike[str]) -> Path:
        return Path(root) / "library" / self.file


def read_manifest(root: str | os.PathLike[str]) -> list[DemoTrack]:
    """Rows of ``root/manifest.csv``."""
    with open(Path(root) / "manifest.csv", newline="") as fh:
        return [
            DemoTrack(r["file"], r["package"], r.get("licence", ""), float(r["duration_s"])) for r in csv.DictReader(fh)
        ]


def _stamp_value(packages: Sequence[Package]) -> str:
    spec = "\n".join(f"{p.name}|{p.pattern}|{p.licence}|{p.raw_pcm_u8_sr}" for p in packages)
    return hashlib.sha1(f"{spec}\n{MIN_DURATION_S}".encode()).hexdigest()[:16]


def fetch(
    root: str | os.PathLike[str],
    *,
    packages: Sequence[Package] = DEFAULT_PACKAGES,
    progress: Callable[[str], None] | None = None,
) -> list[DemoTrack]:
    """Download (once), unpack and lay out the demo music under ``root``.

    Raises
    ------
    DemoCorpusError
        Where ``apt-get``/``dpkg-deb`` are missing or a download fails for
        every package; the message says how to use a folder of your own instead.
    """
    root = Path(root).expanduser().resolve()
    say = progress or (lambda msg: log.info("%s", msg))
    if _complete(root, packages):
        return read_manifest(root)
    # Another process may be fetching into the same folder (two test workers, make demo beside make
    # test): the first one does the work, the others wait for it and read its result.
    with exclusive(root / ".lock"):
        if _complete(root, packages):
            return read_manifest(root)
        return _fetch(root, packages, say)


def _complete(root: Path, packages: Sequence[Package]) -> bool:
    stamp = root / _STAMP
    try:
        return stamp.read_text().strip() == _stamp_value(packages) and (root / "manifest.csv").exists()
    except FileNotFoundError:
        return False


def _fetch(root: Path, packages: Sequence[Package], say: Callable[[str], None]) -> list[DemoTrack]:
    (root / _STAMP).unlink(missing_ok=True)  # the layout below is about to change
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise DemoCorpusError(
                f"{tool} is not available, so the demo music (Debian packages) cannot be fetched; "
                "use a folder of your own music instead (make demo MUSIC=path/to/folder)"
            )
    (root / "debs").mkdir(parents=True, exist_ok=True)
    (root / "extract").mkdir(parents=True, exist_ok=True)
    updated = False
    got: list[Package] = []
    for pkg in packages:
        if not list((root / "debs").glob(f"{pkg.name}_*.deb")):
            say(f"downloading {pkg.name}")
            ok = _apt_download(pkg.name, root / "debs")
            if not ok and not updated:
                say("apt-get update (package lists are missing or stale)")
                _run(["apt-get", "update", "-qq"], check=False)
                updated = True
                ok = _apt_download(pkg.name, root / "debs")
            if not ok:
                log.warning("could not download %s; skipped", pkg.name)
                continue
        dest = root / "extract" / pkg.name
        if not (dest / ".done").exists():
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            deb = sorted((root / "debs").glob(f"{pkg.name}_*.deb"))[-1]
            _run(["dpkg-deb", "-x", str(deb), str(dest)])
            (dest / ".done").touch()
        got.append(pkg)
    if not got:
        raise DemoCorpusError(
            "none of the demo packages could be downloaded with apt-get (no network or not root?); "
            "use a folder of your own music instead (make demo MUSIC=path/to/folder)"
        )
    rows = _lay_out(root, got, say)
    with atomic_path(root / "manifest.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "package", "licence", "duration_s"])
        w.writerows((t.file, t.package, t.licence, f"{t.duration_s:.3f}") for t in rows)
    if len(got) == len(packages):
        with atomic_path(root / _STAMP) as tmp:
            tmp.write_text(_stamp_value(packages))
    return rows


def _run(cmd: list[str], *, cwd: Path | None = None, check: bool = True) -> bool:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0 and check:
        raise DemoCorpusError(f"{' '.join(cmd)} failed: {r.stderr.strip().splitlines()[-1:]}")
    return r.returncode == 0


def _apt_download(name: str, dest: Path) -> bool:
    return _run(["apt-get", "download", "-q", name], cwd=dest, check=False)


def _licence(pkg_root: Path, pkg: Package) -> str:
    """The package's declared licence, else the first DEP-5 ``License:`` short name."""
    if pkg.licence:
        return pkg.licence
    for f in pkg_root.glob("usr/share/doc/*/copyright"):
        for line in f.read_text(errors="replace").splitlines():
            if line.lower().startswith("license:") and line.split(":", 1)[1].strip():
                return line.split(":", 1)[1].strip()
    return "see copyright file"


def _clean(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")


def _lay_out(root: Path, packages: Sequence[Package], say: Callable[[str], None]) -> list[DemoTrack]:
    import soundfile as sf

    lib = root / "library"
    tmp = root / ".tmp"
    shutil.rmtree(lib, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    lib.mkdir(parents=True)
    tmp.mkdir()
    seen: set[str] = set()
    rows: list[DemoTrack] = []
    for pkg in packages:
        base = root / "extract" / pkg.name
        licence = _licence(base, pkg)
        rx = re.compile(pkg.pattern)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                if p.is_symlink() or not rx.search("/" + str(p.relative_to(base))):
                    continue
                digest = hashlib.sha1(p.read_bytes()).hexdigest()
                if digest in seen:  # identical copy elsewhere in the package
                    continue
                seen.add(digest)
                stem, ext = os.path.splitext(_clean(fn))
                ext = ext.lower()
                if pkg.raw_pcm_u8_sr:
                    pcm = np.fromfile(p, dtype=np.uint8).astype(np.float32)
                    src = tmp / f"{stem}.flac"
                    sf.write(src, ((pcm - 128.0) / 128.0), pkg.raw_pcm_u8_sr, subtype="PCM_16")
                    p, ext = src, ".flac"
                fname = f"{pkg.name}__{stem}{ext}"
                k = 2
                while (lib / fname).exists():
                    fname = f"{pkg.name}__{stem}-{k}{ext}"
                    k += 1
                try:
                    duration = info(p).duration_s
                except SongmineError:
                    continue
                if not duration >= MIN_DURATION_S:
                    continue
                shutil.copyfile(p, lib / fname)
                rows.append(DemoTrack(fname, pkg.name, licence, round(duration, 3)))
        say(f"{pkg.name}: {sum(r.package == pkg.name for r in rows)} tracks")
    shutil.rmtree(tmp, ignore_errors=True)
    return rows
