# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean chromium

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/scrapy demo

# The render = "js" tests launch Debian's Chromium (Playwright cannot download browsers here);
# `make demo` never needs it.
chromium:
	@[ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (the browser of render = \"js\" stages)"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium; }

test: $(STAMP) chromium
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) bench/store.py
	$(PY) bench/throughput.py
	$(PY) bench/faults.py
	$(PY) bench/adaptive.py
	$(PY) bench/ratelimit.py
	$(PY) bench/eta.py
	$(PY) bench/memory.py
	$(PY) bench/resume.py
	$(PY) bench/instructions.py

clean:
	rm -rf $(VENV) data stats build *.egg-info .pytest_cache .ruff_cache
