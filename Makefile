# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall when the package metadata changes.
INSTALLED := $(VENV)/.installed
# argon2 compiled for this machine's processor (AVX2 or AVX-512 where it has
# them): the same hashes as the portable wheel's SSE2 build, about twice as fast.
NATIVE_ARGON2 := $(VENV)/.argon2-native

.PHONY: run test bench lint translations clean

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## Set up everything and start the IdP (:5000), the portal (:5001) and Akademiet (:5002).
run: $(INSTALLED)
	$(BIN)/idp db upgrade
	$(BIN)/idp keys generate
	$(BIN)/idp demo
	@$(BIN)/python -m clients.portal & portal=$$!; \
	$(BIN)/python -m clients.academy & academy=$$!; \
	trap 'kill $$portal $$academy 2>/dev/null' EXIT INT TERM; \
	$(BIN)/idp run --host localhost --port 5000

$(NATIVE_ARGON2): $(INSTALLED)
	CFLAGS="-march=native -O3" $(BIN)/python -m pip install --quiet --no-cache-dir --no-deps \
		--force-reinstall --no-binary argon2-cffi-bindings "argon2-cffi-bindings==$$($(BIN)/python \
		-c 'import importlib.metadata as m; print(m.version("argon2-cffi-bindings"))')" \
		|| echo "argon2: could not compile here; the portable build stays"
	touch $@

## Run the whole test suite (SQLite + in-process Redis unless IDP_TEST_* are set).
test: $(INSTALLED)
	@test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

## Load-test the IdP (granian, PostgreSQL, Redis) beside the peer; writes bench/results/.
bench: $(NATIVE_ARGON2)
	@test -x /usr/bin/wrk || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	cd bench/peer && npm ci --no-audit --no-fund --silent
	$(BIN)/python -m bench.run

lint: $(INSTALLED)
	$(BIN)/ruff check idp clients tests
	$(BIN)/ruff format --check idp clients tests

## Extract UI messages, merge them into the Danish catalogue, compile it.
translations: $(INSTALLED)
	$(BIN)/pybabel extract -F babel.cfg --no-location --omit-header -o build/messages.pot .
	$(BIN)/pybabel update -i build/messages.pot -d idp/translations -l da --no-location --omit-header --no-fuzzy-matching
	$(BIN)/pybabel compile -d idp/translations

clean:
	rm -rf $(VENV) build dist *.egg-info instance
