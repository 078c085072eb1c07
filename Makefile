# Two commands set everything up on a fresh Debian/Ubuntu machine:
#   make run   - virtual environment, dependencies, then the app on the built-in demo
#   make test  - the same plus test tools, then ruff and the whole suite, headless
# Packages for offline workstations (README, "Install on an offline workstation"):
#   make package       - dist/: the wheel, the offline bundle (.tar.gz) and the .deb
#   make package-test  - installs the bundle and the .deb afresh and runs each with the network cut
#   make lock          - writes packaging/*.lock again from pyproject.toml
#   make fuzz N=10000  - the loaders fuzzed with N mutated inputs per family (make test runs 1,000 in all)
#   make bench-methods - every method against tf-keras-vis and Xplique, side by side (about an hour)
#   make bench-metrics - each quality metric's cost in forward passes of the demo models (about 4 minutes)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DIST := dist
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' medvis_desktop/__init__.py)
LOCKS := packaging/requirements.lock packaging/requirements-dev.lock packaging/requirements-nodeps.lock
# The platform every lock and wheelhouse is made for: CPython 3.11, Linux x86_64, glibc >= 2.34.
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_34 --generate-hashes \
	--custom-compile-command 'make lock' --quiet

WHEEL := $(DIST)/medvis_desktop-$(VERSION)-py3-none-any.whl
BUNDLE := $(DIST)/medvis-$(VERSION)-linux-x86_64.tar.gz
DEB := $(DIST)/medvis_$(VERSION)_amd64.deb

.PHONY: run test lint bench bench-methods bench-metrics fuzz system-deps clean lock package wheel bundle deb package-test

system-deps:
	@bash packaging/system_deps.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Everything comes from the lock files, with hashes; the project itself is linked in editable.
$(VENV)/.installed: $(LOCKS) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r packaging/requirements-dev.lock
	# nilearn for the MNI152 template only (demo MRI training and its tests), without its dependencies
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r packaging/requirements-nodeps.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
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

# The explanation methods against tf-keras-vis and Xplique (benchmarks/explain_methods.py),
# about an hour on 2 cores. The peers get their own environment: Xplique 2.x pins
# TensorFlow <= 2.20 (benchmarks/peers/requirements.txt). ARGS='--methods grad_cam' etc.
PEERS_VENV := .venv-peers
$(PEERS_VENV)/.installed: benchmarks/peers/requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --no-deps -r benchmarks/peers/requirements.txt
	touch $@

bench-methods: $(VENV)/.installed $(PEERS_VENV)/.installed
	nice -n 5 $(BIN)/python benchmarks/explain_methods.py $(ARGS)

bench-metrics: $(VENV)/.installed
	nice -n 5 $(BIN)/python benchmarks/metrics_cost.py $(ARGS)

N ?= 10000
fuzz: $(VENV)/.installed
	$(BIN)/python -m tests.fuzz.run --n $(N) --out fuzz-report.md

lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml $(LOCK_TARGET) -o packaging/requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test --extra package $(LOCK_TARGET) \
		-c packaging/requirements.lock -o packaging/requirements-dev.lock
	echo "nilearn==0.14.1" | $(BIN)/uv pip compile - --no-deps $(LOCK_TARGET) \
		-o packaging/requirements-nodeps.lock

# --- packages --------------------------------------------------------------------------------

SOURCES := pyproject.toml LICENSE $(shell find medvis_desktop resources -type f -not -path '*/__pycache__/*')

wheel: $(WHEEL)
$(WHEEL): $(VENV)/.installed $(SOURCES)
	rm -rf build/lib $(DIST)/medvis_desktop-*.whl
	$(BIN)/python -m build --wheel --no-isolation --outdir $(DIST) .

bundle: $(BUNDLE)
$(BUNDLE): $(WHEEL) packaging/requirements.lock $(wildcard packaging/bundle/* packaging/linux/*)
	PYTHON=$(BIN)/python bash packaging/bundle/build_bundle.sh $(WHEEL) $(VERSION) $(DIST)

deb: $(DEB)
$(DEB): $(WHEEL) $(wildcard packaging/pyinstaller/* packaging/deb/* packaging/linux/*)
	@bash packaging/system_deps.sh package
	rm -rf build/pyinstaller build/frozen-site $(DIST)/frozen
	$(BIN)/python -m pip install --quiet --no-deps --no-compile --target build/frozen-site $(WHEEL)
	$(BIN)/pyinstaller --noconfirm --log-level WARN --distpath $(DIST)/frozen \
		--workpath build/pyinstaller packaging/pyinstaller/medvis.spec
	PYTHON=$(BIN)/python bash packaging/deb/build_deb.sh $(DIST)/frozen/medvis $(VERSION) $(DIST)

package: wheel bundle deb

# CI runs package-test after test: every artifact is built, installed and run (about 10 minutes).
package-test: system-deps package
	@bash packaging/system_deps.sh package
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q packaging/tests

clean:
	rm -rf $(VENV) build $(DIST)
