# The README's two commands are `make book` and `make test`; everything else is a step of them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PROFILE ?= quick
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
EXECUTED = _build/executed/$(PROFILE)
HTML := _build/book/_build/html/index.html
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup book test lint unit nbval notebooks book-html commit-outputs clean $(NOTEBOOKS:notebooks/%.ipynb=nb-%)

## setup: virtual env with pinned packages, lowrank (editable), Fashion-MNIST. Idempotent.
setup: $(VENV)/.installed fashion-mnist

$(VENV)/.installed: pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=... to another 3.11 interpreter)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[book,test,kernels]'
	touch $@

fashion-mnist:
	@if [ -d $(FASHION_MNIST) ]; then \
	  echo "Fashion-MNIST: $(FASHION_MNIST)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  echo "Fashion-MNIST is missing and this is not a root Debian/Ubuntu shell."; \
	  echo "Run 'sudo apt-get install dataset-fashion-mnist', or put the four *-ubyte.gz files"; \
	  echo "of Fashion-MNIST in a folder and set LOWRANK_DATA to it. Continuing without it."; \
	fi

## book: execute every notebook at $(PROFILE) and build the HTML book.
book: setup notebooks book-html

notebooks: setup
	$(PY) -m lowrank execute --profile $(PROFILE) --out $(EXECUTED) $(NOTEBOOKS)

# One target per notebook, e.g. `make nb-01_data_model PROFILE=standard`.
$(NOTEBOOKS:notebooks/%.ipynb=nb-%): nb-%: setup
	$(PY) -m lowrank execute --profile $(PROFILE) --out $(EXECUTED) notebooks/$*.ipynb

book-html:
	$(PY) -m lowrank stage --executed $(EXECUTED) --dest _build/src
	$(VENV)/bin/jupyter-book build _build/src --path-output _build/book -W -n --keep-going
	@echo "The book is at $(CURDIR)/$(HTML)"

## test: lint, unit tests, notebooks under papermill (quick), nbval, book build.
test: PROFILE = quick
test: setup lint unit nbval book-html

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# tests/test_notebooks.py executes every notebook at the quick profile into _build/executed/quick.
unit:
	$(PY) -m pytest tests

nbval:
	$(PY) -m lowrank strip-injected --out _build/nbval $(NOTEBOOKS)
	cd _build/nbval && ../../$(PY) -m pytest -p no:cacheprovider --nbval-lax \
	  --nbval-sanitize-with ../../tests/nbval_sanitize.cfg -o testpaths=. --rootdir=. .

## commit-outputs: rerun the notebooks at PROFILE (standard by default) and store their outputs.
commit-outputs: PROFILE = standard
commit-outputs: setup
	$(PY) -m lowrank execute --profile $(PROFILE) --out $(EXECUTED) \
	  --status-table book/_status_table.md $(NOTEBOOKS)
	cp $(EXECUTED)/*.ipynb notebooks/
	$(PY) -m lowrank normalize $(NOTEBOOKS)

clean:
	rm -rf _build
