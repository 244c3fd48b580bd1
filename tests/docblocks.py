"""Run the code blocks of a Markdown file, so that its examples cannot rot.

Generic: any Markdown file, any content. A fenced block whose info string starts
with ``sh``, ``bash``, ``shell`` or ``console`` runs in bash (``set -euo
pipefail``: every line must succeed); ``python`` or ``py`` runs as a script of
its own in the given interpreter. Blocks run in document order, in one working
directory, so a block may use what an earlier one made (an index, a table).
Other fences (``json``, ``text``, none) are text.

A block that must not run (it starts a server, takes hours, recurses into
``make test``) is marked by an HTML comment on the line just above its fence,
invisible on the rendered page::

    <!-- no-run: starts a server that runs until stopped -->
    ```sh
    songmine serve
    ```

The reason is required. A block whose commands include a server (it runs
until stopped) names it instead, by the start of its command line::

    <!-- background: songmine serve -->

Those lines start in the background; the block passes when the rest succeeds
and each of them is still running :data:`BACKGROUND_S` seconds later (a
mistyped option or a missing index ends it at once), then they are stopped.
``pip install`` lines that name ``songmine`` (with or without extras) install
from a source tree instead of a package index.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "BlockFailed", "blocks", "run_block", "SHELL", "PYTHON", "BACKGROUND_S"]

#: Seconds a background command of a block must stay up.
BACKGROUND_S = 5

SHELL = ("sh", "bash", "shell", "console")
PYTHON = ("python", "py")
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")
_NO_RUN = re.compile(r"^\s*<!--\s*no-run\s*:\s*(?P<why>.*?)\s*-->\s*$")
_BACKGROUND = re.compile(r"^\s*<!--\s*background\s*:\s*(?P<prefix>.+?)\s*-->\s*$")
_PIP_SONGMINE = re.compile(r"""(?P<quote>['"]?)songmine(?P<extras>\[[a-z0-9_,\s-]*\])?(?P=quote)(?=\s|$)""")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language (``sh``/``python``), code, first line, and why it is skipped."""

    lang: str
    code: str
    line: int
    skip: str | None = None
    background: str | None = None  # command lines starting with this run in the background

    @property
    def runs(self) -> bool:
        return self.skip is None and self.lang in ("sh", "python")


class BlockFailed(AssertionError):
    """A block exited non-zero: the message names its line and shows the end of its output."""


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of Markdown ``text``, in order (shell and Python normalised to ``sh``/``python``)."""
    out: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m["fence"], m["info"].strip()
        start = i
        body = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence[0] * len(fence)) and set(lines[i].strip()) == {fence[0]}
        ):
            body.append(lines[i][len(m["indent"]) :] if lines[i].startswith(m["indent"]) else lines[i])
            i += 1
        i += 1  # the closing fence
        word = info.split()[0].lower() if info else ""
        lang = "sh" if word in SHELL else "python" if word in PYTHON else word
        prev = lines[start - 1] if start > 0 else ""
        no_run = _NO_RUN.match(prev)
        if prev.strip().startswith("<!--") and "no-run" in prev and not (no_run and no_run["why"]):
            raise ValueError(f"line {start}: a no-run marker needs a reason: <!-- no-run: why -->")
        bg = _BACKGROUND.match(prev)
        out.append(
            Block(
                lang, "\n".join(body) + "\n", start + 1, no_run["why"] if no_run else None, bg["prefix"] if bg else None
            )
        )
    return out


def install_from(code: str, source: Path) -> str:
    """``code`` with ``pip install songmine[extras]`` installing from the source tree ``source``."""
    out = []
    for line in code.splitlines():
        if re.match(r"^\s*(python\s+-m\s+)?pip3?\s+install\b", line):
            line = _PIP_SONGMINE.sub(lambda m: f"'{source}{m['extras'] or ''}'", line)
        out.append(line)
    return "\n".join(out) + "\n"


def in_background(code: str, prefix: str) -> str:
    """``code`` with its lines starting with ``prefix`` run in the background, checked alive, then stopped."""
    lines = ["__bg=()"]
    for line in code.splitlines():
        if line.lstrip().startswith(prefix):
            lines.append(f"{line.split(' #')[0].rstrip()} & __bg+=($!)")
        else:
            lines.append(line)
    lines.append(f"sleep {BACKGROUND_S}")
    lines.append(
        'for p in "${__bg[@]}"; do kill -0 "$p" 2>/dev/null || { echo "a background command ended early" >&2; '
        'exit 1; }; kill "$p"; wait "$p" 2>/dev/null || true; done'
    )
    return "\n".join(lines) + "\n"


def run_block(
    block: Block, *, cwd: Path, env: dict[str, str], python: str, source: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run one block; raise :class:`BlockFailed` (line, code, output) unless it exits 0."""
    code = install_from(block.code, source) if source is not None else block.code
    if block.lang == "sh" and block.background:
        code = in_background(code, block.background)
    if block.lang == "sh":
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    elif block.lang == "python":
        cmd = [python, "-c", code]
    else:
        raise ValueError(f"line {block.line}: a {block.lang!r} block does not run")
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise BlockFailed(
            f"the {block.lang} block at line {block.line} exited {r.returncode}:\n{block.code}\n"
            f"--- stdout (end) ---\n{r.stdout[-3000:]}\n--- stderr (end) ---\n{r.stderr[-3000:]}"
        )
    return r


def venv_env(venv: Path, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user of ``venv`` whose home is ``home`` (``~`` in the blocks)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SONGMINE_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(
        HOME=str(home),
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        **extra,
    )
    return env
