# Two commands set everything up on a fresh Debian/Ubuntu machine:
#   make run   - virtual environment, dependencies, then the app on the built-in demo
#   make test  - the same plus test tools, then ruff and the whole suite, headless
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench system-deps clean

system-deps:
	@bash packaging/system_deps.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# The MNI152 template only (demo MRI training and its tests): nilearn's own dependencies are not needed
	$(BIN)/python -m pip install --quiet --no-deps nilearn==0.14.1
	touch $@

run: system-deps $(VENV)/.installed
	$(BIN)/medvis --demo ct

lint: $(VENV)/.installed
	$(BIN)/ruff check .

test: system-deps $(VENV)/.installed lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/load_memory.py
	$(BIN)/python benchmarks/explain_speed.py

clean:
	rm -rf $(VENV)
