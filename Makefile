# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SYS_STAMP := .venv/.sysdeps-stamp
# Debian packages: ffprobe checks recordings, chromium drives the browser tests,
# fonts-ocr-b draws synthetic MRZs, opencv-data holds the face cascade files.
SYS_PACKAGES := ffmpeg chromium chromium-driver fonts-dejavu-core fonts-ocr-b opencv-data
PYTEST_ARGS ?=

.PHONY: run test lint sysdeps venv clean bench

run: $(STAMP)
	$(BIN)/identdesk serve

test: $(STAMP) $(SYS_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check identdesk signaling media agent_console tests
	$(BIN)/ruff format --check identdesk signaling media agent_console tests
	$(BIN)/mypy signaling agent_console media identdesk

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

sysdeps: $(SYS_STAMP)

$(SYS_STAMP): Makefile | $(STAMP)
	@missing=""; for p in $(SYS_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	touch $(SYS_STAMP)

clean:
	rm -rf $(VENV) build *.egg-info
