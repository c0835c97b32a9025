# `make demo`: install and matte the bundled public-domain photo with the default weights.
# `make test`: install with the test extras and run the suite CI runs.
# Both install the versions in constraints.txt (what the tests last passed with); `make lock` refreshes it.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PINS ?= -c constraints.txt
OUT ?= out/demo

.PHONY: install install-dev demo test lint bench lock

install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q $(PINS) -e .

install-dev:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q $(PINS) -e ".[dev]"

demo: install
	modnet matte src/modnet_matting/assets/grace_hopper.jpg -o $(OUT) --output alpha,cutout,composite,preview
	@echo "wrote $(OUT)"

test: install-dev
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m pytest -q -rs -m "not slow and not gpu"

lint:
	$(PYTHON) -m ruff check src tests benchmarks

# Re-resolve every extra to the newest releases in a brand-new virtual environment and pin them;
# then run `make test` (CI does, in its own fresh environment) before committing constraints.txt.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q torch==2.13.0
	.venv-lock/bin/python -m pip install -q -e ".[all,dev]"
	( echo "# pip constraints: the versions \`make test\` last passed with (\`make lock\` refreshes them)"; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable ) > constraints.txt
	rm -rf .venv-lock
