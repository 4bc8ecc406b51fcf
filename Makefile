# The README's two commands are `make book` and `make test`; everything else is a step of them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Empty PROFILE: `make book` renders the committed notebooks (standard profile) as they are.
PROFILE ?=
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
EXECUTED = $(if $(PROFILE),_build/executed/$(PROFILE),notebooks)
BOOK := $(PY) tools/book.py
HTML := _build/book/_build/html/index.html
FASHION_MNIST := /usr/share/datasets/fashion-mnist
# DEVICE=cuda (or cpu, cuda:N): the device of every chapter, handed to them as LOWRANK_DEVICE by
# tools/book.py; unset, each chapter takes CUDA when torch sees a GPU and the CPU otherwise.
DEVICE ?=
DEVICE_FLAG = $(if $(DEVICE),--device $(DEVICE))
# Trained networks (lowrank.models): trained once per configuration, then loaded by every chapter.
export LOWRANK_CACHE ?= $(CURDIR)/_build/models

.PHONY: prepare-gpu setup book test lint unit nbval nbval-results nbval-tolerances nbval-references notebooks book-html book-check commit-outputs clean $(NOTEBOOKS:notebooks/%.ipynb=nb-%)

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

## book: build the HTML book from the committed notebooks; with PROFILE=..., execute them first.
book: setup $(if $(PROFILE),notebooks) book-html

notebooks: PROFILE := $(or $(PROFILE),quick)
notebooks: setup
	$(BOOK) execute --profile $(PROFILE) $(DEVICE_FLAG) --out $(EXECUTED) $(NOTEBOOKS)

# One target per notebook, e.g. `make nb-01_data_model PROFILE=standard`.
$(NOTEBOOKS:notebooks/%.ipynb=nb-%): PROFILE := $(or $(PROFILE),quick)
$(NOTEBOOKS:notebooks/%.ipynb=nb-%): nb-%: setup
	$(BOOK) execute --profile $(PROFILE) $(DEVICE_FLAG) --out $(EXECUTED) notebooks/$*.ipynb

# A clean build each time: Sphinx's incremental build keeps cross-page glue (the results and
# status pages) from the previous build, so a quick build followed by `make book` showed quick
# values on those pages.
book-html:
	$(BOOK) stage --executed $(EXECUTED) --dest _build/src
	rm -rf _build/book
	$(VENV)/bin/jupyter-book build _build/src --path-output _build/book -W -n --keep-going
	@echo "The book is at $(CURDIR)/$(HTML)"

## test: lint, unit tests, notebooks under papermill (quick), their results against the nbval
## references, book build, built-HTML checks.
test: PROFILE = quick
test: setup lint unit nbval-results book-html book-check

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# tests/test_notebooks.py executes every notebook at the quick profile into _build/executed/quick.
unit:
	$(PY) -m pytest tests --ignore=tests/test_book_html.py --ignore=tests/nbval

# Reads the HTML that book-html wrote: raw TeX, unresolved references, stderr blocks, wide tables.
book-check:
	$(PY) -m pytest tests/test_book_html.py

# nbval compares each chapter's results cell (the last cell, which tools/book.py appends to every
# executed chapter; see lowrank.report.results) with a reference, in lax mode (only cells tagged
# nbval-check-output). References: tests/nbval/quick for the quick profile (made by
# `make nbval-references` from a clean commit), the committed notebooks for PROFILE=standard.
# The comparison is exact where the reference recorded this machine's platform and within the
# tolerances measured over seeds elsewhere (tools/regression.py, plugged into nbval by
# tools/nbval_tolerant.py; tolerances in tests/nbval/tolerances.json, quick profile only).
NBVAL_REFERENCES := tests/nbval/quick
NBVAL_TOLERANCES := tests/nbval/tolerances.json
NBVAL_FLAGS := -p no:cacheprovider -p tools.nbval_tolerant --nbval-lax \
  --nbval-sanitize-with ../../../tests/nbval_sanitize.cfg -o testpaths=. --rootdir=.

## nbval: nbval itself: reruns every chapter and compares its results with the reference. Quick
## (default): the references in tests/nbval/quick (about 15 min). PROFILE=standard: reruns the
## committed notebooks with their standard parameters (hours; the model cache should be warm).
nbval: PROFILE := $(or $(PROFILE),quick)
nbval: setup
	rm -rf _build/nbval/$(PROFILE)
	mkdir -p _build/nbval/$(PROFILE)
	$(if $(filter quick,$(PROFILE)),cp $(NBVAL_REFERENCES)/*.ipynb _build/nbval/$(PROFILE)/,cp $(NOTEBOOKS) _build/nbval/$(PROFILE)/)
	cd _build/nbval/$(PROFILE) && PYTHONPATH=$(CURDIR) \
	  NBVAL_TOLERANCES=$(if $(filter quick,$(PROFILE)),$(CURDIR)/$(NBVAL_TOLERANCES)) \
	  ../../../$(PY) -m pytest $(NBVAL_FLAGS) .

## nbval-results: what `make test` runs: the results cells that `make unit` executed, compared
## with tests/nbval/quick under the same rules, without executing anything again.
## EXECUTED=<folder>: the chapters in that folder instead (executed at quick on any machine).
nbval-results:
	$(PY) -m pytest -p no:cacheprovider tests/nbval/test_results.py \
	  $(if $(filter command line,$(origin EXECUTED)),--executed $(EXECUTED))

## nbval-tolerances: rerun CHAPTERS (default: all) at quick with seeds 1 to 5 from a clean
## commit, and store what they print in tests/nbval/tolerances.json (about an hour for all ten).
## A chapter whose checks fail at a seed (chapter 04 at seeds 1 and 3) contributes the others.
TOLERANCE_SEEDS := 1 2 3 4 5
CHAPTERS ?= $(NOTEBOOKS)
nbval-tolerances: setup
	@test -z "$$(git status --porcelain)" || { git status --short; \
	  echo "nbval-tolerances needs a clean tree: commit or stash the changes above first."; exit 1; }
	rm -rf $(foreach s,$(TOLERANCE_SEEDS),_build/tolerances/seed$(s))
	$(foreach s,$(TOLERANCE_SEEDS),LOWRANK_CACHE=$(CURDIR)/_build/tolerances/models \
	  $(BOOK) execute --profile quick --set seed=$(s) --keep-going \
	  --out _build/tolerances/seed$(s) $(CHAPTERS) || true;)
	$(PY) tools/regression.py tolerances --out $(NBVAL_TOLERANCES) \
	  --runs $(foreach s,$(TOLERANCE_SEEDS),_build/tolerances/seed$(s))

## nbval-references: regenerate tests/nbval/quick from a clean commit (executes every chapter).
nbval-references: setup
	@test -z "$$(git status --porcelain)" || { git status --short; \
	  echo "nbval-references needs a clean tree: commit or stash the changes above first."; exit 1; }
	$(BOOK) execute --profile quick --out _build/executed/references $(NOTEBOOKS)
	rm -rf $(NBVAL_REFERENCES)
	$(BOOK) references --out $(NBVAL_REFERENCES) _build/executed/references/*.ipynb

## commit-outputs: rerun the notebooks at PROFILE (standard by default) from a clean commit and
## store their outputs, so that each chapter's banner names the commit that made them.
commit-outputs: PROFILE := $(or $(PROFILE),standard)
commit-outputs: setup
	@test -z "$$(git status --porcelain)" || { git status --short; \
	  echo "commit-outputs needs a clean tree: commit or stash the changes above first."; exit 1; }
	$(BOOK) execute --profile $(PROFILE) --out _build/executed/$(PROFILE) \
	  --status-table book/_status_table.md $(NOTEBOOKS)
	cp _build/executed/$(PROFILE)/*.ipynb notebooks/
	$(BOOK) normalize $(NOTEBOOKS)

clean:
	rm -rf _build

## prepare-gpu: the folder .gpu/ (Fashion-MNIST and the wheels the lent GPU image lacks) and the
## command that runs the GPU check and every chapter on CUDA there; checks the 64 MiB carry limit.
prepare-gpu: setup
	$(PY) tools/prepare_gpu.py
