# q4sdk developer entry points. `make demo` and `make test` are all a fresh Linux machine needs.
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: demo test setup toolchains clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	# the CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

toolchains:
	bash scripts/install_toolchains.sh

demo: setup
	$(VENV)/bin/q4sdk demo

test: setup toolchains
	$(VPY) -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
