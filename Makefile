# infoclust: `make book` builds the executed book, `make test` runs every test.
# Both create .venv and install everything on first use.
PYTHON  ?= python3.11
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PROFILE ?= default

.PHONY: book test venv bench lab clean

book: $(STAMP)
	$(PY) -m infoclust.book --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest tests

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

venv: $(STAMP)

lab: $(STAMP)
	$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install --quiet -e '.[test,lab]'
	$(VENV)/bin/jupyter lab notebooks/

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf _build
