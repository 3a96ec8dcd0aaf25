# Every target installs what it needs into a local virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned here, not in pyproject.toml, because the build
# machines keep these releases on local disk and pip installs them from there. On
# x86_64 they are CUDA builds (about 5.5 GB with the CUDA libraries) that also run
# on the CPU. Override TORCH_SPEC to install other builds.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install lint format generate check-generated test demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

generate: install
	$(VENV)/bin/tableau-gen generate

check-generated: install
	$(VENV)/bin/tableau-gen generate --check

test: install lint check-generated
	$(PY) -m pytest

demo: install
	$(PY) -m metanode.demo

bench: install
	$(PY) benchmarks/tableau_gen_speed.py
	$(PY) benchmarks/solver_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
