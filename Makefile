# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned to the CPU build that lies on disk; any other spec pulls a CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rotelab demo

# The parallel suite, then the serial stage that needs real services (.ci/services starts two vLLM
# servers and a Ray head, runs `pytest -m service`, stops them).
test: $(STAMP)
	$(BIN)/python -m pytest
	bash .ci/services $(BIN)/python

# Every benchmark with its defaults (hours on 2 cores; each resumes where it stopped). One thread each:
# oversubscribed BLAS threads on a shared machine make timings meaningless.
bench: $(STAMP)
	mkdir -p bench/results
	for f in bench/*.py; do echo "== $$f"; OMP_NUM_THREADS=1 ROTELAB_THREADS=1 $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .venv-vllm runs bench/results .pytest_cache
