# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_STAMP := .venv/.run-deps-stamp
SYS_STAMP := .venv/.sysdeps-stamp
# Debian packages the service needs: opencv-data holds the face cascade files.
RUN_PACKAGES := opencv-data
# and the tests: ffprobe checks recordings, chromium drives the browser tests,
# fonts-ocr-b draws synthetic MRZs.
SYS_PACKAGES := $(RUN_PACKAGES) ffmpeg chromium chromium-driver fonts-dejavu-core fonts-ocr-b
PYTEST_ARGS ?=

.PHONY: run test lint sysdeps venv clean bench

run: $(STAMP) $(RUN_STAMP)
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

# apt-get only for what is missing; root installs directly, others through sudo
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

$(RUN_STAMP): Makefile | $(STAMP)
	$(call apt_install,$(RUN_PACKAGES))
	touch $(RUN_STAMP)

$(SYS_STAMP): Makefile | $(STAMP)
	$(call apt_install,$(SYS_PACKAGES))
	touch $(SYS_STAMP)

clean:
	rm -rf $(VENV) build *.egg-info
