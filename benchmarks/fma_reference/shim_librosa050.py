"""Make librosa 0.5.0 (2017) run on Python 3.11 / numpy 1.23 without changing what it computes.

Edits the installed package in place (run with the reference venv's python), idempotently:

* ``cache.py``: joblib >= 0.12 has no ``Memory.cachedir`` → test ``location`` (the cache stays off).
* multi-dimensional indexing with a *list* of slices (an error since numpy 1.23) → ``tuple(...)``.
* ``mel_frequencies``: ``np.linspace`` of two 1-element arrays returns a column since numpy 1.16
  → take the scalars (numpy 1.12 broadcast them to the same 1-D result).

Two more shims live in ``run.py`` (they patch other packages at run time): ``scipy.signal.hanning``
(removed from scipy) and scipy 0.19's ``skew``/``kurtosis`` of constant rows (0 and −3, not NaN).
"""

import importlib.util
import re
from pathlib import Path

root = Path(importlib.util.find_spec("librosa").submodule_search_locations[0])
names = ("channels slices sort_slice inds1 inds2 idx_in idx_out idx_agg clip full_index idx_slice "
         "sub_slice idx_slices subslice slice_pre slice_post").split()
pat = re.compile(r"(?<=[\w\)\]])\[(" + "|".join(names) + r")\]")
for p in root.rglob("*.py"):
    s = p.read_text()
    t = pat.sub(r"[tuple(\1)]", s)
    t = t.replace("if self.cachedir is not None and self.level >= level:",
                  "if getattr(self, 'location', None) is not None and self.level >= level:")
    t = t.replace("mels = np.linspace(min_mel, max_mel, n_mels)",
                  "mels = np.linspace(np.ravel(min_mel)[0], np.ravel(max_mel)[0], n_mels)")
    if t != s:
        p.write_text(t)
        print(f"patched {p.relative_to(root)}")
import librosa  # noqa: E402  - must import now

print("librosa", librosa.__version__, "imports")
