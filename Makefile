# q4sdk developer entry points. `make demo` and `make test` are all a fresh Linux machine needs.
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
C_FILES  = $(shell find runtime_c -name '*.[ch]' | sort)

.PHONY: demo test lint format regression setup toolchains clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	# setuptools >= 77 as pyproject.toml asks: tests/test_wheel_install.py builds the wheel without isolation
	$(VPY) -m pip install -q --upgrade pip "setuptools>=77"
	# the CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

toolchains:
	bash scripts/install_toolchains.sh

demo: setup
	$(VENV)/bin/q4sdk demo

# style gates: ruff (config in pyproject.toml) for Python, clang-format (.clang-format) for runtime_c/
lint: setup toolchains
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .
	clang-format --dry-run -Werror $(C_FILES)

# apply what `make lint` checks
format: setup toolchains
	$(VPY) -m ruff check --fix --exit-zero .
	$(VPY) -m ruff format .
	clang-format -i $(C_FILES)

# ResNet-8 flash, arena and QEMU instruction counts against benchmarks/results/regression_baseline.json
regression: setup toolchains
	$(VPY) benchmarks/check_regression.py

# the gates first (style, then the size / instruction-count regression), then the test suite
test: setup toolchains lint
	$(VPY) benchmarks/check_regression.py
	$(VPY) -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis .ruff_cache q4sdk.egg-info q4sdk/_resources
