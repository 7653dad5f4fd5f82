# kgcelery: `make up` runs the system on the embedded stack, `make test` runs the suite.
# Both get their environment from `make install` (idempotent; quick when nothing changed).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install up up-jvm test lint bench soak clean down chromium broker-contract broker-contract-oldest jvm kcat

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	@touch $(STAMP)

up: install
	$(BIN)/kgcelery up

down: install
	$(BIN)/kgcelery down

# The whole system on what production runs: Apache Kafka + Redis + Neo4j Community.
up-jvm: install jvm
	$(BIN)/kgcelery up --stack kafka-neo4j

# The JVM tier (tests marked jvm: the kafka-neo4j stack, Apache Kafka and Neo4j from Maven
# Central) needs Java 17+ and Maven; this resolves its jars (~190 MB, once, into
# ~/.cache/kgcelery/jvm) before the tests, or says loudly why the tier will be skipped.
# KGCELERY_REQUIRE_JVM=1 (.ci/run) makes that a failure.
jvm: install
	@if $(BIN)/python -m kgcelery.embedded.maven; then :; \
	elif [ "$$KGCELERY_REQUIRE_JVM" = 1 ]; then \
	  echo "KGCELERY_REQUIRE_JVM=1: the JVM tier must run"; exit 1; \
	else \
	  echo "!!!!!! THE JVM TIER (Apache Kafka + Neo4j tests) WILL BE SKIPPED: see above !!!!!!"; \
	fi

# Debian's kcat (librdkafka's CLI, what the agents' chart runs) for tests/test_kcat_agents.py.
kcat:
	@command -v kcat >/dev/null || { apt-get update -qq && apt-get install -y -qq kcat; } \
	  || echo "!!!!!! no kcat (apt-get install kcat): its test will be skipped !!!!!!"

test: install chromium broker-contract jvm kcat
	$(BIN)/ruff check kgcelery tests bench beat_schedule.py
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

# What kgcelery knows of kombu's Redis layout (kgcelery/broker/) is checked by
# tests/test_broker_contract.py on the newest kombu the pin admits (the main suite) and on
# the oldest, in a venv of its own. Widen the pin in pyproject.toml only to minors this
# passes on. (kombu < 5.7 caps redis-py below 6.5, and falkordb needs redis-py >= 7.1, so
# 5.7.0 is the oldest kombu that installs with kgcelery at all.)
KOMBU_OLDEST := 5.7.0
CELERY_OLDEST := 5.7.0
OLDEST := .venv-kombu-oldest
$(OLDEST)/.installed: pyproject.toml
	@test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet -e '.[dev,embedded]' 'kombu==$(KOMBU_OLDEST)' 'celery[redis]==$(CELERY_OLDEST)'
	@touch $@

broker-contract: install
	@newest=$$($(BIN)/python -c "import kombu; print(kombu.__version__)"); \
	if [ "$$newest" = "$(KOMBU_OLDEST)" ]; then \
	  echo "broker contract: kombu $$newest is the oldest and the newest the pin admits; the main suite's run of tests/test_broker_contract.py covers both ends"; \
	else $(MAKE) --no-print-directory broker-contract-oldest; fi

broker-contract-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/pytest -q -m broker_contract tests/test_broker_contract.py

lint: install
	$(BIN)/ruff check kgcelery tests bench beat_schedule.py
	$(BIN)/mypy

bench: install
	@for b in bench/bridge.py bench/broker.py bench/graph.py bench/e2e.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Faults at random under a steady stream (tests/soak.py); SOAK_SECONDS=3600 make soak.
SOAK_SECONDS ?= 300
soak: install
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest tests/soak.py -s -q --timeout 0

clean:
	rm -rf $(VENV) $(OLDEST) .kgcelery .pytest_cache .mypy_cache .ruff_cache *.egg-info
