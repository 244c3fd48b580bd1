"""The light install: the core works without any extra, and whatever needs one says which, in one line.

The packages of an extra are blocked in a child process (``sys.modules[name] = None``: ``import name``
then fails as if it were not installed), so these tests run in the dev environment;
``tests/test_fresh_install.py`` installs the core alone in a new venv and identifies a clip with it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import HEAVY_PACKAGES

from songmine.errors import MissingExtraError, SongmineError
from songmine.extras import DISTRIBUTIONS, EXTRAS, as_missing_extra, install_hint, missing, require

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ALL_EXTRA_MODULES = sorted({m for mods in EXTRAS.values() for m in mods})

#: What the core install holds (pyproject's dependencies): no extra's package among them.
CORE = {"numpy", "scipy", "av", "soundfile", "soxr", "typer", "rich", "pydantic", "platformdirs"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()


def _extra_distributions(extra: str) -> set[str]:
    """The distributions ``pip install 'songmine[extra]'`` adds, self-references followed."""
    out: set[str] = set()
    for req in PYPROJECT["project"]["optional-dependencies"][extra]:
        if _name(req) == "songmine":
            for sub in re.search(r"\[(.*)\]", req).group(1).split(","):
                out |= _extra_distributions(sub.strip())
        else:
            out.add(_name(req))
    return out


def run_without(modules, code: str, *, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a child Python in which ``modules`` cannot be imported."""
    block = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return subprocess.run(
        [sys.executable, "-c", f"import sys\n{block}{code}"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "120"},
    )


def cli_without(modules, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_without(
        modules, f"from songmine.cli._app import main\nimport songmine.cli\nsys.exit(main({list(argv)!r}))", cwd=cwd
    )


# ------------------------------------------------------------------ pyproject and the table agree


def test_the_core_dependencies_are_the_light_ones():
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert core == CORE
    assert core & HEAVY_PACKAGES == set()


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_every_extra_in_pyproject_installs_what_the_table_says_it_provides(extra):
    provided = {DISTRIBUTIONS.get(m, m).lower() for m in EXTRAS[extra]}
    assert provided <= _extra_distributions(extra), (
        f"songmine[{extra}] does not install {provided - _extra_distributions(extra)}"
    )


def test_all_is_every_extra_and_dev_has_all():
    extras = set(PYPROJECT["project"]["optional-dependencies"]) - {"all", "dev"}
    assert extras == set(EXTRAS)
    everything = set().union(*(_extra_distributions(e) for e in EXTRAS))
    assert _extra_distributions("all") == everything
    assert everything <= _extra_distributions("dev")


# ------------------------------------------------------------------ require() and its safety net


def test_require_names_the_extra_and_is_an_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingExtraError) as info:
        require("cluster", "the estimator")
    exc = info.value
    assert isinstance(exc, ImportError) and isinstance(exc, SongmineError)
    assert str(exc).startswith("the estimator needs the cluster extra: pip install 'songmine[cluster]'")
    assert "scikit-learn" in str(exc) and "\n" not in str(exc)
    assert exc.extra == "cluster" and exc.missing == ("scikit-learn",) and exc.name == "scikit-learn"
    assert missing("cluster") == ["scikit-learn"]
    require("cluster", "the plots", modules=("matplotlib",))  # modules= narrows the check: sklearn not needed
    require("catalog", "the loaders")  # installed here: nothing raised
    assert install_hint("eval") == "pip install 'songmine[eval]'"


def test_an_unguarded_import_error_of_an_extra_is_said_as_the_extra():
    exc = as_missing_extra(ModuleNotFoundError("No module named 'sklearn'", name="sklearn.base"), "songmine x")
    assert isinstance(exc, MissingExtraError) and exc.extra == "cluster" and "songmine[cluster]" in str(exc)
    assert as_missing_extra(ModuleNotFoundError("No module named 'foo'", name="foo"), "songmine x") is None


def test_a_broken_install_of_an_extra_is_said_as_the_extra_not_a_crash(tmp_path):
    """An extra's package that is installed (``require`` passes) but fails to import with an ImportError naming
    no module, as a build against another numpy does: the CLI names the extra and the cause, exit 2."""
    broken = tmp_path / "site" / "sklearn"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise ImportError("numpy.core.multiarray failed to import")\n')
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "songmine", "cluster", "run", "t.csv"],
        capture_output=True,
        text=True,
        cwd=work,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(broken.parent), "SONGMINE_CACHE": str(tmp_path / "cache")},
    )
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0], r.stderr
    assert lines[0] == (
        "songmine: error: songmine cluster run needs the cluster extra: pip install 'songmine[cluster]' "
        "(scikit-learn cannot be imported: numpy.core.multiarray failed to import)"
    )
    assert not (tmp_path / "cache" / "crash.log").exists() and not any(work.iterdir())


# ------------------------------------------------------------------ each verb without its extra

DIR = "."  # a folder that exists (the child runs in tmp_path)

VERBS = [
    (("catalog", "merge", "x.zip"), "catalog"),
    (("catalog", "cache"), "catalog"),
    (("features", DIR), "features"),
    (("index", DIR, "--method", "seed", "--index", "ix"), "features"),
    (("identify", "clip.wav", "--method", "seed", "--index", "ix"), "features"),
    (("cluster", "run", "t.csv"), "cluster"),
    (("cluster", "choose-k", "t.csv"), "cluster"),
    (("serve", "--index", "ix"), "server"),
    (("features", DIR, "--engine", "spark"), "spark"),
    (("cluster", "run", "t.csv", "--engine", "spark"), "spark"),
    (("eval", DIR, "--plot", "p.png"), "eval"),
    (("eval", DIR, "--conditions", "broadcast", "--tracks", "1"), "eval"),
]


@pytest.mark.parametrize("argv,extra", VERBS, ids=[" ".join(a) for a, _ in VERBS])
def test_a_verb_without_its_extra_says_which_in_one_line_and_exits_2(argv, extra, tmp_path):
    blocked = ["pyspark"] if extra == "spark" else ["matplotlib"] if argv[-1] == "p.png" else EXTRAS[extra]
    r = cli_without(blocked, *argv, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"pip install 'songmine[{extra}]'" in lines[0], lines[0]
    assert not any(tmp_path.iterdir()), "nothing is written before the extra is checked"


LIBRARY = [
    ("from songmine.catalog import load", "catalog"),
    ("import songmine.catalog.features", "features"),
    ("import songmine.cluster.kmeans", "cluster"),
    ("from songmine.cluster import KMeans", "cluster"),
    ("import songmine.server", "server"),
    ("import songmine.spark", "spark"),
    (
        "from songmine.minhash.onset import onset_peak_frames; import numpy as np; "
        "onset_peak_frames(np.ones(22050, np.float32))",
        "features",
    ),
]


@pytest.mark.parametrize("statement,extra", LIBRARY, ids=[s.split(";")[0] for s, _ in LIBRARY])
def test_the_library_raises_a_typed_error_naming_the_extra(statement, extra):
    own = [m for m in EXTRAS[extra] if m not in EXTRAS["catalog"]] or EXTRAS[extra]  # catalog's are checked first
    code = (
        "from songmine.errors import MissingExtraError\n"
        f"try:\n    exec({statement!r})\nexcept MissingExtraError as exc:\n"
        "    print(exc.extra, isinstance(exc, ImportError), str(exc), sep='|')\n"
    )
    r = run_without(own, code)
    assert r.returncode == 0 and r.stdout.count("|") == 2, (r.stdout, r.stderr)
    got_extra, is_import_error, message = r.stdout.strip().split("|")
    assert (got_extra, is_import_error) == (extra, "True")
    assert f"pip install 'songmine[{extra}]'" in message


def test_every_module_imports_without_the_extras_or_says_which_it_needs():
    """No module dies of a raw ImportError: it imports, or raises MissingExtraError naming its extra."""
    src = ROOT / "src"
    modules = sorted(
        ".".join(
            p.relative_to(src).with_suffix("").parts[:-1]
            if p.name == "__init__.py"
            else p.relative_to(src).with_suffix("").parts
        )
        for p in (src / "songmine").rglob("*.py")
    )
    code = (
        "import importlib, json\nfrom songmine.errors import MissingExtraError\nout = {}\n"
        f"for m in {modules!r}:\n"
        "    try:\n        importlib.import_module(m)\n        out[m] = 'ok'\n"
        "    except MissingExtraError as exc:\n        out[m] = 'extra:' + exc.extra\n"
        "    except BaseException as exc:\n        out[m] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(out))\n"
    )
    r = run_without(ALL_EXTRA_MODULES, code, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert {m: v for m, v in got.items() if v != "ok" and not v.startswith("extra:")} == {}
    core = [m for m, v in got.items() if v == "ok"]
    for m in (
        "songmine",
        "songmine.cli",
        "songmine.fingerprint.index",
        "songmine.fingerprint.query",
        "songmine.library",
        "songmine.minhash.dedupe",
        "songmine.minhash.onset",
        "songmine.minhash.sketch",
        "songmine.pairs",
        "songmine.evaluation.harness",
        "songmine.cluster.engines",
    ):
        assert m in core, f"{m}: {got[m]}"
    needs = {m: v for m, v in got.items() if v.startswith("extra:")}
    assert all(
        m.startswith(("songmine.catalog", "songmine.cluster", "songmine.spark", "songmine.server")) for m in needs
    ), needs


def test_every_verb_has_help_without_any_extra():
    code = (
        "import typer\nfrom songmine.cli import app\nfrom songmine.cli._app import main\n"
        "root = typer.main.get_command(app)\nnames = []\n"
        "def walk(cmd, prefix):\n"
        "    if hasattr(cmd, 'commands'):\n"
        "        for n, sub in cmd.commands.items():\n            walk(sub, prefix + [n])\n"
        "    else:\n        names.append(prefix)\n"
        "walk(root, [])\nbad = [n for n in names if main(n + ['--help']) != 0]\n"
        "print('BAD', bad)\n"
    )
    r = run_without(ALL_EXTRA_MODULES, code)
    assert r.returncode == 0 and "BAD []" in r.stdout, (r.stdout[-2000:], r.stderr)


@pytest.mark.corpus
def test_index_identify_dedupe_and_scan_work_without_any_extra(real_cuts, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for c in real_cuts[:2]:
        (lib / c.name).symlink_to(c)
    ix = tmp_path / "ix"
    r = cli_without(ALL_EXTRA_MODULES, "index", str(lib), "--index", str(ix), "-j", "1")
    assert r.returncode == 0, r.stderr
    r = cli_without(ALL_EXTRA_MODULES, "identify", str(real_cuts[1]), "--index", str(ix), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["matches"][0]["path"].endswith(real_cuts[1].name)
    for argv in (
        ("dedupe", str(lib), "--json"),
        ("scan", str(lib), "--json"),
        ("tracks", "--index", str(ix)),
        ("verify", "--index", str(ix)),
        ("index", str(lib), "--index", str(ix), "--method", "sketch"),
    ):
        r = cli_without(ALL_EXTRA_MODULES, *argv)
        assert r.returncode == 0, (argv, r.stderr)
