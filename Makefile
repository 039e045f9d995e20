# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck demo bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A strict editable install: a link tree that holds exactly what a wheel
# would, so tests import the installed `idstitch` and mypy can see it.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

install: $(STAMP)
	@# Re-link the tree so files added since the last install are seen.
	@$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . \
		--config-settings editable_mode=strict > $(VENV)/relink.log 2>&1 \
		|| { cat $(VENV)/relink.log; exit 1; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy reads the installed link tree (build/__editable__.*), which holds the
# same files a wheel would, under their installed names.
typecheck: install
	MYPYPATH=$$(ls -d build/__editable__.idstitch-*) $(BIN)/mypy -p idstitch
	$(BIN)/mypy tests examples

test: lint typecheck
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -q
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

demo: install
	$(BIN)/idstitch demo

clean:
	rm -rf $(VENV) build .coverage .coverage.* .mypy_cache .pytest_cache .ruff_cache
