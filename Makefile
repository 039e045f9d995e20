# Three commands for a newcomer: `make demo`, `make check` while working, `make test` before a commit.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test check explore lint typecheck demo bench fuzz mutate clean

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
	$(BIN)/mypy tests examples tools

# Property tests run derandomized (tests/conftest.py): the same commit gives the
# same result everywhere. `make explore` draws fresh examples, ten times as many.
# The suite runs on every core (pytest-xdist; TEST_JOBS=0 runs it in this one process):
# most of its time is spent waiting on the processes and servers the tests start.
TEST_JOBS ?= auto
test: lint typecheck
	rm -f .coverage .coverage.*
	IDSTITCH_HYPOTHESIS=ci $(BIN)/coverage run -m pytest -q -n $(TEST_JOBS) --dist worksteal
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

# The inner loop, under a minute: lint, types, and every test that starts no process and
# is not slow (markers `processes` and `slow`, docs/testing.md), with fewer examples each.
check: lint typecheck
	IDSTITCH_HYPOTHESIS=check $(BIN)/python -m pytest -q -p no:cacheprovider \
		-m "not slow and not processes"

explore: install
	IDSTITCH_HYPOTHESIS=explore $(BIN)/python -m pytest -q -m hypothesis $(EXPLORE_ARGS)

# Coverage-guided fuzzing of the log reader and the snapshot reader (atheris), each
# for FUZZ_SECONDS; the corpus and any crash inputs stay under .venv/fuzz/.
FUZZ_SECONDS ?= 60
fuzz: install
	$(BIN)/python -m pip install --quiet -e '.[fuzz]' --config-settings editable_mode=strict
	@mkdir -p $(VENV)/fuzz/log $(VENV)/fuzz/snapshot $(VENV)/fuzz/crashes
	$(BIN)/python fuzz/fuzz_log_reader.py $(VENV)/fuzz/log fuzz/seeds/log \
		-max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(VENV)/fuzz/crashes/log-
	$(BIN)/python fuzz/fuzz_snapshot_reader.py $(VENV)/fuzz/snapshot fuzz/seeds/snapshot \
		-max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(VENV)/fuzz/crashes/snapshot-

# Mutation testing of machine/, store/ and events/ (tools/mutate.py, docs/testing.md): each
# mutant against its module's fast tests, survivors reported by file and line; hours for all
# three on 2 cores. MUTATE_ARGS='machine/_fold.py' for one module, '--sample 0.3' for a share.
MUTATE_ARGS ?=
mutate: install
	$(BIN)/python tools/mutate.py $(MUTATE_ARGS)

# The benchmarks of docs/performance.md (bars B1-B7 next to their baselines);
# BENCH_ARGS=--quick for the short run, BENCH_ARGS='--json bench.json' to keep the figures.
BENCH_ARGS ?=
bench: install
	$(BIN)/python -m pip install --quiet -e '.[bench]' --config-settings editable_mode=strict
	$(BIN)/python -m bench $(BENCH_ARGS)

demo: install
	$(BIN)/idstitch demo

clean:
	rm -rf $(VENV) build .coverage .coverage.* .mypy_cache .pytest_cache .ruff_cache
