# trustyard: two commands for a newcomer on a fresh Debian machine.
#   make serve   install what is needed and run the registry (SQLite + ./data)
#   make test    install what the tests need (system packages too) and run them all

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
HOST   ?= 127.0.0.1
PORT   ?= 5000
DATA   ?= ./data
TEST_IMAGES ?= /var/cache/trustyard/test-images
PYTEST_ARGS ?=

.PHONY: serve test install system-deps test-images lint unit integration bench clean

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv failed: installing python3-venv"; \
	  apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

serve: install
	$(BIN)/trustyard serve --host $(HOST) --port $(PORT) --data-dir $(DATA)

system-deps:
	scripts/install-system-deps.sh

test-images: system-deps
	TRUSTYARD_TEST_IMAGES=$(TEST_IMAGES) scripts/build-test-images.sh

lint: install
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: install system-deps test-images lint
	TRUSTYARD_TEST_IMAGES=$(TEST_IMAGES) $(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: install system-deps test-images
	$(BIN)/python bench/run.py --rates --regbench --memory

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
