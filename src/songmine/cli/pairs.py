"""Verb ``pairs``: all pairs of integers in a file that sum to a target."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ._app import JsonOption, app


@app.command("pairs")
def pairs_cmd(
    source: Annotated[
        str | None,
        typer.Argument(
            metavar="FILE|-",
            help="Integers separated by whitespace or commas, or a 1-D integer .npy file; '-' or nothing reads stdin.",
        ),
    ] = None,
    target_text: Annotated[
        str,
        typer.Option(
            "--sum", "-s", metavar="S", help="The target sum S: an integer (digits, optional sign).", show_default=False
        ),
    ] = ...,  # type: ignore[assignment]
    count: Annotated[
        bool, typer.Option("--count", help="Print only how many pairs there are (nothing is materialised).")
    ] = False,
    indices: Annotated[
        bool, typer.Option("--indices", help="Report index pairs i < j (0-based) instead of value pairs.")
    ] = False,
    method: Annotated[
        str, typer.Option("--method", help="auto | hash (O(n) hashing) | sort (numpy sort + searchsorted).")
    ] = "auto",
    json_out: JsonOption = False,
) -> None:
    """Find all pairs of values (or indices, with --indices) that sum to S.

    Value pairs are printed once each, smaller value first, sorted, one pair
    per line ("a b"). With --json: {"sum", "mode", "count", "pairs"}.
    Integers are digits with an optional sign ("4.0", "1_000" and empty fields
    like "1,,3" are errors naming their line, exit 2), as in the Python API.
    """
    from ..pairs import count_pairs, iter_index_pairs, pairs_with_sum, parse_int

    target = parse_int(target_text, what="--sum")
    values = _read_values(source)
    mode = "indices" if indices else "values"
    out = sys.stdout
    if count:
        n = count_pairs(values, target, mode=mode, method=method)  # type: ignore[arg-type]
        if json_out:
            out.write(f'{{"sum": {target}, "mode": "{mode}", "count": {n}}}\n')
        else:
            out.write(f"{n}\n")
        return
    if indices:
        blocks = iter_index_pairs(values, target, method=method)  # type: ignore[arg-type]
    else:
        blocks = iter([pairs_with_sum(values, target, method=method)])  # type: ignore[arg-type]
    if json_out:
        out.write(f'{{"sum": {target}, "mode": "{mode}", "pairs": [')
        n = 0
        for block in blocks:
            if len(block):
                out.write(
                    ("," if n else "") + ",".join(map("[{},{}]".format, block[:, 0].tolist(), block[:, 1].tolist()))
                )
                n += len(block)
        out.write(f'], "count": {n}}}\n')
    else:
        for block in blocks:
            if len(block):
                out.write("\n".join(map("{} {}".format, block[:, 0].tolist(), block[:, 1].tolist())))
                out.write("\n")


def _read_values(source: str | None):
    """Integers from a text/.npy file or stdin: an int64 array, or a list of Python ints beyond int64."""
    import numpy as np

    from ..errors import DataError
    from ..pairs import parse_integers

    if source in (None, "-"):
        data = sys.stdin.buffer.read()
        name = "<stdin>"
    else:
        path = Path(source)
        try:
            with open(path, "rb") as fh:
                head = fh.read(6)
                # a .npy file is loaded straight from disk (no second copy in memory)
                data = head if head == b"\x93NUMPY" else head + fh.read()
        except OSError as exc:
            raise DataError(f"cannot read {source}: {exc.strerror or exc}") from None
        name = source
    if data.startswith(b"\x93NUMPY"):
        import io

        try:
            arr = np.load(io.BytesIO(data) if source in (None, "-") else source, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{name}: not a readable .npy file: {exc}") from None
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise DataError(f"{name}: expected a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}")
        return arr
    return parse_integers(data, name=name)
