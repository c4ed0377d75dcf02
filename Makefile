PYTHON ?= python
PIP ?= $(PYTHON) -m pip
INSTALL = $(PIP) install -q -c constraints.txt

.PHONY: demo test install install-test lint bench slow tutorials fonts-data browser-deps browser-test installed docs

install:
	$(INSTALL) torch==2.13.0
	$(INSTALL) -e .

install-test: install
	$(INSTALL) -e ".[test]"

demo: install
	$(PYTHON) -m vaekit demo runs/demo

test: install-test
	$(PYTHON) -m pytest

# Static checks: ruff's lint rules and its formatting (both on src/, tests/, bench/), then mypy on src/vaekit
# (strict for the public modules; see [tool.ruff] and [tool.mypy] in pyproject.toml).
lint: install-test
	$(PYTHON) -m ruff check src tests bench
	$(PYTHON) -m ruff format --check src tests bench
	$(PYTHON) -m mypy

slow: install-test
	$(PYTHON) -m pytest -m slow

# Every tutorial in notebooks/ run as a script in quick mode (QUICK=1).
tutorials: install-test
	$(PYTHON) -m pytest -m tutorials -q

bench: install
	$(PYTHON) bench/throughput.py
	$(PYTHON) bench/ddp_scaling.py

# Thousands of font faces for `vaekit report fonts`: Noto, TeX Live's extra fonts (OpenType, TrueType, Type 1)
# and about 80 more font packages (Debian/Ubuntu; needs root or sudo; about 2 GB).
fonts-data:
	@if command -v apt-get >/dev/null; then $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	  fonts-noto-extra texlive-fonts-extra fonts-aenigma fonts-dejavu fonts-liberation fonts-noto-core \
	  fonts-urw-base35 fonts-crosextra-carlito fonts-crosextra-caladea fonts-ebgaramond fonts-linuxlibertine \
	  fonts-croscore fonts-cantarell fonts-open-sans fonts-roboto fonts-lato fonts-freefont-ttf fonts-texgyre \
	  fonts-lmodern fonts-stix fonts-junicode fonts-go fonts-adf-accanthis fonts-adf-gillius \
	  fonts-adf-universalis fonts-adf-berenis fonts-adf-baskervald fonts-adf-tribun fonts-adf-verana \
	  fonts-adf-mekanus fonts-adf-libris fonts-adf-romande fonts-league-spartan fonts-inter fonts-firacode \
	  fonts-hack fonts-mononoki fonts-oldstandard fonts-sil-gentium fonts-sil-charis fonts-sil-andika \
	  fonts-sil-doulos fonts-bebas-neue fonts-comic-neue fonts-dosis fonts-yanone-kaffeesatz fonts-breip \
	  fonts-cabin fonts-jura fonts-quicksand fonts-paratype fonts-sil-gentiumplus fonts-vollkorn fonts-isabella \
	  fonts-humor-sans fonts-femkeklaver fonts-fanwood fonts-goudybookletter fonts-linex fonts-prociono \
	  fonts-radisnoir fonts-tuffy fonts-dustin fonts-f500 fonts-mplus fonts-lobster fonts-lobstertwo \
	  fonts-gfs-artemisia fonts-gfs-didot fonts-gfs-baskerville fonts-gfs-bodoni-classic fonts-gfs-complutum \
	  fonts-gfs-gazis fonts-gfs-neohellenic fonts-gfs-olga fonts-gfs-porson fonts-gfs-solomos \
	  fonts-gfs-theokritos fonts-averia-gwf fonts-averia-sans-gwf fonts-averia-serif-gwf fonts-dkg-handwriting \
	  fonts-ecolier-court fonts-engadget fonts-inconsolata fonts-jetbrains-mono; \
	else echo "no apt-get: put TTF/OTF/TTC or Type 1 (.pfb) files in ~/.fonts or /usr/share/fonts"; fi

# Chromium and chromedriver for the explorer's page tests, from Debian's packages (Debian/Ubuntu; needs root
# or SUDO=sudo); Selenium comes with the test extra.
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null; then $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "no apt-get: install Chromium and chromedriver yourself"; exit 1; fi

# The explorer's page in a headless Chromium, for an image and a molecule model; a browser test fails rather
# than skips (VAEKIT_REQUIRE_BROWSER=1). VAEKIT_SCREENSHOT_DIR=DIR keeps the screenshots.
browser-test: install-test browser-deps
	VAEKIT_REQUIRE_BROWSER=1 $(PYTHON) -m pytest tests/test_explore.py -k browser -rs

# vaekit as users install it: sdist and wheel built and checked, the wheel in a fresh venv, the demo and the
# explorer's API run from outside the clone.
installed: install-test
	.ci/installed

# The documentation site in site/: every warning is an error (--strict). The tutorials are executed as it is
# built, in quick mode (QUICK=1, set by docs/hooks.py unless given). NO_MKDOCS_2_WARNING turns off a banner
# the theme prints about MkDocs' next major version.
docs: install
	$(INSTALL) -e ".[docs,chem]"
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict
