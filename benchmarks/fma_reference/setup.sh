#!/usr/bin/env bash
# Build the FMA reference environment: librosa 0.5.0 (what FMA's features.csv was computed
# with) in its OWN venv, never the project's. Usage: setup.sh DEST (a new directory for the venv).
# Then put a copy of mdeff/fma's features.py (MIT; not part of this repository) anywhere and
# pass it to benchmarks/features.py with --fma-features.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 DEST   (DEST: a new directory for the reference venv)" >&2
    exit 2
fi
DEST=$1
HERE=$(cd "$(dirname "$0")" && pwd)
python3.11 -m venv "$DEST"
# numpy 1.23 is the newest that still has np.float (used by librosa 0.5.0) and wheels for 3.11
"$DEST/bin/pip" install -q numpy==1.23.5 scipy==1.10.1 librosa==0.5.0 resampy==0.4.3 \
    numba==0.57.1 pandas==1.5.3 soundfile
"$DEST/bin/python" "$HERE/shim_librosa050.py"
