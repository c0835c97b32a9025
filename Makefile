# `make demo`: install and matte the bundled public-domain photo with the default weights.
# `make test`: install with the test extras and run the suite CI runs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
OUT ?= out/demo

.PHONY: install install-dev demo test lint bench

install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .

install-dev:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"

demo: install
	modnet matte src/modnet_matting/assets/grace_hopper.jpg -o $(OUT) --output alpha,cutout,composite,preview
	@echo "wrote $(OUT)"

test: install-dev
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m pytest -q -m "not slow and not gpu"

lint:
	$(PYTHON) -m ruff check src tests benchmarks
