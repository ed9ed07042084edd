# Two commands on a fresh machine (Python >= 3.10, no network beyond the package registries):
#   make chat   install into .venv, build the index of seeds/ and start the chat on http://127.0.0.1:7860
#   make test   install into .venv (and Chromium for the browser tests) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch; a plain `torch` requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python

.PHONY: install chat test browser clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[ui,eval,test]"
	touch $@

install: $(VENV)/.installed

chat: install
	$(PY) app.py

# Debian's Chromium drives the browser tests (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "warning: no chromium; browser tests will be skipped (install Debian's chromium package)"

test: install browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) index/CURRENT index/g-* index/.tmp-* index/.lock
