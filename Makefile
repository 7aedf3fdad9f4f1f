# psdwatch: make demo (set up and play a microscope session), make test, make bench.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# The Debian packages psdwatch needs: Tesseract for scale bars; DejaVu, Liberation,
# FreeFont and Noto fonts for the scale-bar corpus the reader is tested on (serif
# and sans, bold, italic); Chromium for the tests that open the reports in a real browser.
APT_PACKAGES := tesseract-ocr fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-freefont-ttf fonts-noto-core chromium
FONT_DIRS := dejavu liberation freefont noto

.PHONY: setup system-deps demo test bench clean

setup: system-deps $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

system-deps:
	@if ! command -v tesseract >/dev/null || ! command -v chromium >/dev/null || \
	    ! (cd /usr/share/fonts/truetype 2>/dev/null && ls -d $(FONT_DIRS) >/dev/null 2>&1) || \
	    ! test -f /usr/share/fonts/truetype/dejavu/DejaVuSerif-Italic.ttf; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $(APT_PACKAGES); \
	  else echo "psdwatch needs: sudo apt-get install -y $(APT_PACKAGES)"; exit 1; fi; \
	fi

demo: setup
	$(VENV)/bin/psdwatch demo

test: setup
	$(PY) -m pytest -q -n auto --durations=25

bench: setup
	$(PY) bench/all.py

clean:
	rm -rf $(VENV) .pytest_cache
