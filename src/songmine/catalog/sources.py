"""Where an FMA table lives: a CSV file, a folder holding the tables, or a member of ``fma_metadata.zip``.

Zip members are streamed (CRC-checked at the end), never unpacked; a source's
:meth:`TableSource.identity` changes whenever its bytes may have, which is what
the parquet cache keys on.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import DataError, ParameterError
from .schema import TABLES

__all__ = ["TableSource", "resolve", "table_of_name", "ZIP_ERRORS"]

#: What reading a damaged or truncated zip can raise.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError)


@dataclass(frozen=True, slots=True)
class TableSource:
    """Where one table lives: a plain file, or a member of a zip archive.

    ``name`` is what error messages show (``fma_metadata.zip:fma_metadata/tracks.csv``).
    """

    table: str
    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def identity(self) -> str:
        """A string that changes whenever the bytes may have changed (for the cache key)."""
        st = self.path.stat()
        ident = f"{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.member}"
        if self.member:
            with _zip(self.path) as zf:
                zi = zf.getinfo(self.member)
                ident += f"|{zi.CRC}|{zi.file_size}"
        return ident

    @contextmanager
    def open_text(self) -> Iterator[IO[str]]:
        """Open as UTF-8 text (zip members are streamed, not unpacked)."""
        with self.open_binary() as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
            yield fh

    @contextmanager
    def open_binary(self) -> Iterator[IO[bytes]]:
        """Open for streaming binary reads (zip members decompress on the fly, CRC-checked at EOF)."""
        if self.member is None:
            try:
                fh = open(self.path, "rb")
            except OSError as exc:
                raise DataError(f"{self.name}: cannot open: {exc.strerror or exc}") from exc
            with fh:
                yield fh
            return
        with _zip(self.path) as zf:
            try:
                raw = zf.open(self.member)
            except ZIP_ERRORS as exc:
                raise DataError(f"{self.name}: corrupt or truncated zip member: {exc}") from exc
            with raw:
                yield raw

    def read_bytes(self) -> bytes:
        """The whole content (zip members are decompressed and CRC-checked)."""
        if self.member is None:
            try:
                return self.path.read_bytes()
            except OSError as exc:
                raise DataError(f"{self.name}: cannot read: {exc.strerror or exc}") from exc
        with _zip(self.path) as zf:
            try:
                return zf.read(self.member)
            except ZIP_ERRORS as exc:
                raise DataError(f"{self.name}: corrupt or truncated zip member: {exc}") from exc


@contextmanager
def _zip(path: Path) -> Iterator[zipfile.ZipFile]:
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except ZIP_ERRORS as exc:
        raise DataError(f"{path}: not a readable zip archive (truncated or corrupt): {exc}") from exc
    with zf:
        yield zf


def table_of_name(name: str) -> str | None:
    """The FMA dispatch rule: which table a file is, by substring of its name."""
    base = os.path.basename(name).lower()
    for t in ("features", "echonest", "genres", "tracks"):
        if t in base and base.endswith(".csv"):
            return t
    return None


def resolve(source: str | os.PathLike[str], table: str | None = None) -> TableSource:
    """Find one table in ``source`` (a CSV file, a directory, or ``fma_metadata.zip``).

    Raises
    ------
    DataError
        The file or the table is missing, or the zip is unreadable.
    ParameterError
        ``table`` is not one of :data:`TABLES`.
    """
    if table is not None and table not in TABLES:
        raise ParameterError(f"table={table!r} must be one of {', '.join(TABLES)}")
    p = Path(source).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or directory")
    if p.is_dir():
        if table is None:
            raise ParameterError(f"{p} is a directory: say which table to load ({', '.join(TABLES)})")
        f = p / f"{table}.csv"
        if not f.exists():
            found = sorted(x.name for x in p.glob("*.csv") if table_of_name(x.name) == table)
            if not found:
                raise DataError(f"{p}: missing {table}.csv")
            f = p / found[0]
        return TableSource(table, f)
    if zipfile.is_zipfile(p) or p.suffix.lower() == ".zip":
        if table is None:
            raise ParameterError(f"{p} is an archive: say which table to load ({', '.join(TABLES)})")
        with _zip(p) as zf:
            members = [n for n in zf.namelist() if table_of_name(n) == table and not n.startswith("__MACOSX")]
        exact = [n for n in members if os.path.basename(n) == f"{table}.csv"]
        if not (exact or members):
            raise DataError(f"{p}: archive has no {table}.csv")
        return TableSource(table, p, (exact or members)[0])
    t = table or table_of_name(p.name)
    if t is None:
        raise ParameterError(
            f"{p}: cannot tell which FMA table this is from its name; pass table= one of {', '.join(TABLES)}"
        )
    return TableSource(t, p)
