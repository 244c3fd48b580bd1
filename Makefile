# songmine — two commands do all set-up on a fresh machine:
#   make demo   (virtualenv, install, demo music, main job)
#   make test   (virtualenv with the dev extra, ruff lint + format check, demo music, chromium + ffmpeg + espeak-ng, pytest)
# Caches (pip, demo music) live in the per-user cache dir, outside the clone.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MUSIC  ?=
# A worker that crashes ends the run, naming its test: pytest-xdist 3.8 with --dist loadfile can
# wait forever for a replacement worker that is never given work.
PYTEST_ARGS ?= -n 2 --dist loadfile --max-worker-restart 0
export SPARK_LOCAL_IP ?= 127.0.0.1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint format venv venv-dev demo-music system-tools clean help

help:
	@echo "make demo [MUSIC=folder]  - fetch the demo music (or use MUSIC), index it, eval, print the table"
	@echo "make test                 - lint, then run the test suite (what CI runs)"
	@echo "make format               - apply ruff's fixes and formatting"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever pyproject.toml changes.
# (the eval extra: the demo runs `songmine eval`, whose real-world conditions and --plot need it;
#  the dev extra has every extra: songmine[all])
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[eval]'
	$(NUMBA_WARM_UP)
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(NUMBA_WARM_UP)
	touch $(VENV)/.installed $@

# librosa compiles its numba kernels when imported and caches them inside the venv; two
# processes writing that cache at once can leave a mismatched pair of files that crashes every
# later call of the kernel. One import right after install writes the cache once, alone.
NUMBA_WARM_UP = $(BIN)/python -c "import importlib.util as u; u.find_spec('librosa') and __import__('librosa.onset')"

venv: $(VENV)/.installed
venv-dev: $(VENV)/.installed-dev

# The demo: fetch the demo music (or take MUSIC), index a subset of it, ask
# degraded clips of indexed and held-out tracks, print the eval table.
# A few minutes on 2 cores; DEMO_EVAL overrides the subset (see docs/eval.md).
DEMO_EVAL ?= --tracks 12 --durations 3,5,10 --queries-per-cell 6 --nonmember-queries 24
demo: venv
ifeq ($(strip $(MUSIC)),)
	$(BIN)/songmine demo-corpus
	$(BIN)/songmine eval "$$($(BIN)/songmine demo-corpus --quiet)" $(DEMO_EVAL) --markdown demo-eval.md --plot demo-eval.png
else
	$(BIN)/songmine eval "$(MUSIC)" $(DEMO_EVAL) --markdown demo-eval.md --plot demo-eval.png
endif

demo-music: venv-dev
	$(BIN)/songmine demo-corpus --quiet

# Debian's Chromium for the browser tests (never `playwright install`), the ffmpeg program (an
# optional decoder the tests compare with PyAV's) and espeak-ng (the test that remakes the shipped
# speech bank), installed with apt-get when missing.
SYSTEM_TOOLS := chromium:chromium ffmpeg:ffmpeg espeak-ng:espeak-ng
system-tools:
	@for pair in $(SYSTEM_TOOLS); do \
	  cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's $$pkg for the tests"; \
	    (apt-get install -y -qq $$pkg >/dev/null 2>&1 || \
	     (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg >/dev/null)); \
	  else echo "$$cmd missing and cannot be installed here: tests that need it skip (fail under CI=true)"; fi; \
	done

test: venv-dev lint demo-music system-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Style is checked, not discussed: ruff's lint and format rules are in pyproject.toml.
lint: venv-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: venv-dev
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
