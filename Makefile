PYTHON ?= python
PIP ?= $(PYTHON) -m pip
INSTALL = $(PIP) install -q -c constraints.txt

.PHONY: demo test install install-test bench slow tutorials fonts-data browser-test

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

# Every tutorial in notebooks/ run as a script in quick mode (QUICK=1).
tutorials: install-test
	$(PYTHON) -m pytest -m tutorials -q

bench: install
	$(PYTHON) bench/throughput.py
	$(PYTHON) bench/ddp_scaling.py

# Hundreds of font families for `vaekit report fonts` (Debian/Ubuntu; needs root or sudo).
fonts-data:
	@if command -v apt-get >/dev/null; then $(SUDO) apt-get update && $(SUDO) apt-get install -y fonts-aenigma fonts-dejavu fonts-liberation fonts-noto-core; \
	else echo "no apt-get: put TTF/OTF files in ~/.fonts or /usr/share/fonts"; fi

# The explorer's headless-browser test: Chromium + chromedriver (Debian/Ubuntu), Selenium from PyPI.
browser-test: install-test
	@if command -v apt-get >/dev/null; then $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver; \
	else echo "no apt-get: install Chromium and chromedriver yourself"; fi
	$(PIP) install -q "selenium>=4.10"
	$(PYTHON) -m pytest tests/test_explore.py -k browser -rs
