# nomoat: two commands do everything on a fresh machine.
#   make demo   set up (.venv, the default model) and start the chat demo on the default model
#   make test   set up and run the test suite
# Everything is installed inside the checkout (.venv/, models/); nothing outside it is touched
# except pip's own cache.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint clean

$(BIN)/nomoat: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

models/SmolLM2-135M-Instruct/nomoat.json: $(BIN)/nomoat
	$(BIN)/nomoat convert --default

setup: $(BIN)/nomoat models/SmolLM2-135M-Instruct/nomoat.json

demo: setup
	$(BIN)/nomoat chat

test: setup
	$(BIN)/ruff check py tests bench
	$(BIN)/pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) models .cache
