"""Run mdeff/fma's ``features.py`` (``compute_features``, unchanged) on librosa 0.5.0.

Usage (with the reference venv's python, see ``setup.sh``)::

    python run.py --fma-features PATH/features.py OUT.csv FILE...

Writes OUT.csv in the FMA layout (track_id = file name) and prints one line per file:
``name<TAB>cpu_seconds`` (this process plus its finished children: audioread's FFmpeg decoder). Shims where 2017 code meets a current Python stack, none of which
changes a number: ``scipy.signal.hanning`` → ``scipy.signal.windows.hann`` (removed from
scipy); ``scipy.stats.skew``/``kurtosis`` → scipy 0.19's definitions (a constant row gives
0 and −3 where scipy ≥ 1.9 gives NaN); FMA's warnings-as-errors filter for librosa is not
installed (librosa 0.5.0 triggers numpy DeprecationWarnings); ``utils.get_audio_path`` →
the path itself; ``tqdm`` stubbed. ``librosa.load`` is FMA's own: audioread → FFmpeg → 16-bit PCM.
"""

import argparse
import os
import resource
import sys
import time
import types
import warnings

import numpy as np
import scipy.signal
import scipy.signal.windows
from scipy import stats

scipy.signal.hanning = scipy.signal.windows.hann


def _moments(a, axis):
    a = np.asarray(a)
    d = a - a.mean(axis, keepdims=True)
    return np.mean(d**2, axis), d


def _skew(a, axis=0, bias=True):
    m2, d = _moments(a, axis)
    m3 = np.mean(d**3, axis)
    with np.errstate(all="ignore"):
        return np.where(m2 == 0, 0.0, m3 / m2**1.5)


def _kurtosis(a, axis=0, fisher=True, bias=True):
    m2, d = _moments(a, axis)
    m4 = np.mean(d**4, axis)
    with np.errstate(all="ignore"):
        v = np.where(m2 == 0, 0.0, m4 / m2**2.0)
    return v - 3 if fisher else v


stats.skew, stats.kurtosis = _skew, _kurtosis
sys.modules.setdefault("tqdm", types.SimpleNamespace(tqdm=lambda it, **k: it))
sys.modules["utils"] = types.SimpleNamespace(get_audio_path=lambda audio_dir, tid: tid)
warnings.simplefilter("ignore")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fma-features", required=True, help="mdeff/fma's features.py")
    ap.add_argument("out")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    import librosa
    import pandas as pd

    assert librosa.__version__ == "0.5.0", librosa.__version__
    warnings.simplefilter("ignore")  # librosa's import re-enables numpy's DeprecationWarnings
    mod = types.ModuleType("fma_features")
    with open(args.fma_features) as f:
        exec(compile(f.read(), args.fma_features, "exec"), mod.__dict__)
    mod.warnings = types.SimpleNamespace(filterwarnings=lambda *a, **k: None)
    rows, cols = {}, None
    def cpu() -> float:
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + c.ru_utime + c.ru_stime

    for p in args.files:
        t = cpu()
        s = mod.compute_features(str(p))
        print(f"{os.path.basename(p)}\t{cpu() - t:.3f}", flush=True)
        rows[os.path.basename(p)] = s.to_numpy(np.float32)
        cols = s.index
    df = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    df.index.name = "track_id"
    df.sort_index(axis=0).sort_index(axis=1).to_csv(args.out, float_format="%.10e")


if __name__ == "__main__":
    main()
