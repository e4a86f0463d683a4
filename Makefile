# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint install clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing prompt-retriever and its dependencies into $(VENV) (first run only)..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,serve]' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
	@$(BIN)/python -c "import prompt_retriever, torch, sentence_transformers" 
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(BIN)/prompt-retriever demo

test: $(STAMP)
	@$(BIN)/ruff check --quiet src tests benchmarks
	@$(BIN)/python -m pytest

lint: $(STAMP)
	@$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	@$(BIN)/python benchmarks/bench_retriever.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
