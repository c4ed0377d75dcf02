PYTHON ?= python
PIP ?= $(PYTHON) -m pip
INSTALL = $(PIP) install -q -c constraints.txt

.PHONY: demo test install install-test bench slow

install:
	$(INSTALL) torch==2.13.0
	$(INSTALL) -e .

install-test: install
	$(INSTALL) -e ".[test]"

demo: install
	$(PYTHON) -m vaekit demo runs/demo

test: install-test
	$(PYTHON) -m pytest

slow: install-test
	$(PYTHON) -m pytest -m slow

bench: install
	$(PYTHON) bench/throughput.py
