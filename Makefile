# The README's two commands: `make run` (set up if needed, then the default study) and `make test`.
PYTHON ?= python3
VENV ?= .venv
CORES ?= all

.PHONY: run test setup clean

# The venv is (re)built when pyproject.toml changes; everything is pinned there.
$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/snakemake --cores $(CORES)

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

clean:
	rm -rf results logs .snakemake report.html inpca-report.zip inpca-report
