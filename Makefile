# stationmon: `make demo` runs a simulated district; `make test` sets up and runs every test;
# `make soak` runs an HA pair under faults for 30 minutes and prints its account (ARGS="--minutes 5").
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEBIAN_PACKAGES := mosquitto influxdb prometheus prometheus-alertmanager chromium fonts-wqy-microhei docker-compose nodejs

.PHONY: venv demo deps test test-unit check bench soak clean mutation mutation-fast mutation-registers mutation-map

$(BIN)/stationmon: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $@

venv: $(BIN)/stationmon

## The first command: a whole simulated district, nothing to install beside the package.
demo: venv
	$(BIN)/stationmon demo $(ARGS)

## The servers the integration tests start from their own binaries (Debian's packages; needs root).
deps:
	@missing=""; \
	for b in mosquitto influxd promtool prometheus-alertmanager chromium; do \
	  command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || missing="$$missing $$b"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	fi

## The second command: set up and run every test (unit and integration, against real servers).
test: deps venv
	@set +e; $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

test-unit: venv
	$(BIN)/python -m pytest -q tests/unit

check: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy stationmon

bench: deps venv
	$(BIN)/python bench/run_all.py $(ARGS)

## 2,000 stations into an HA pair, influxd, mosquitto and Alertmanager with faults; prints the account.
soak: deps venv
	$(BIN)/python bench/soak.py $(ARGS)

## Mutation testing (mutmut, unit tests only; config in pyproject's [tool.mutmut]): the score and the survivors.
## mutation: stationmon/domain/ and the spool (long; results are cached in mutants/, a rerun redoes changed code).
## mutation-fast: rules/ and registers.py, rerun every time; exit 1 below MUTATION_FAIL_UNDER %.
MUTMUT_ARGS ?= --max-children 2
MUTATION_FAIL_UNDER ?= 90
MUTATION_FAST := "stationmon.domain.rules.*" "stationmon.domain.registers.*"

## mutmut maps each test to the functions it calls once, and later maps only tests with new names: a test whose
## body changed keeps its old map, and a mutant it now kills would still be reported as surviving. When a test
## file changed since the map was made, drop the map: the run makes a new one (one traced run of the unit tests).
mutation-map:
	@if [ -f mutants/mutmut-stats.json ] && [ -n "$$(find tests -name '*.py' -newer mutants/mutmut-stats.json -print -quit)" ]; then \
	  echo "tests changed since mutmut mapped them: mapping again"; rm -f mutants/mutmut-stats.json; fi

mutation: venv mutation-map
	$(BIN)/mutmut run $(MUTMUT_ARGS)
	$(BIN)/python tools/mutation_report.py "stationmon.domain.*" "stationmon.adapters.spool.*"

mutation-fast: venv mutation-map
	$(BIN)/mutmut run $(MUTMUT_ARGS) $(MUTATION_FAST)
	$(BIN)/python tools/mutation_report.py $(MUTATION_FAST) --fail-under $(MUTATION_FAIL_UNDER)

## The part of the fast subset that fits CI on 2 cores (registers.py; rules/ takes hours: see README Development).
mutation-registers: venv mutation-map
	$(BIN)/mutmut run $(MUTMUT_ARGS) "stationmon.domain.registers.*"
	$(BIN)/python tools/mutation_report.py "stationmon.domain.registers.*" --fail-under $(MUTATION_FAIL_UNDER)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache artifacts *.egg-info mutants
