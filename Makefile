# kgcelery: `make up` runs the system on the embedded stack, `make test` runs the suite.
# Both get their environment from `make install` (idempotent; quick when nothing changed).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install up up-jvm test lint bench soak clean down chromium broker-contract broker-contract-oldest tools lock jvm kcat

install: $(STAMP)

# The image's locked versions (requirements/image.lock) constrain the dev environment too,
# so the suite runs on what the image ships; pip takes no hashes in constraints.
$(STAMP): pyproject.toml requirements/image.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	sed -e '/^ *--hash/d' -e 's/ *\\$$//' requirements/image.lock > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e '.[dev,embedded]'
	@touch $(STAMP)

# Re-lock after changing dependencies in pyproject.toml: every version and hash the image
# installs (tests/test_deploy_image.py checks the lock against pyproject.toml).
lock: install
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml requirements/build.in --extra kubernetes \
	  --generate-hashes --python-version 3.11 --universal -o requirements/image.lock

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

test: install chromium broker-contract tools jvm kcat
	$(BIN)/ruff check kgcelery tests bench beat_schedule.py
	$(BIN)/mypy
	$(BIN)/mypy bench
	$(BIN)/lint-imports
	KGCELERY_HELM=$(HELM) $(BIN)/pytest $(PYTEST_ARGS)

# helm for tests/test_deploy_helm.py, built from its Go module once per version into a
# cache outside the repository (about 9 minutes on 2 cores; then reused by every clone).
# Without Go the helm tests skip and say so.
HELM_VERSION := v4.3.2
TOOLS ?= $(HOME)/.cache/kgcelery/tools
HELM := $(TOOLS)/helm-$(HELM_VERSION)/helm
tools:
	@if [ -x $(HELM) ]; then :; \
	elif command -v go >/dev/null; then \
	  echo "building helm $(HELM_VERSION) into $(TOOLS) (once; several minutes)"; \
	  GOBIN=$(TOOLS)/helm-$(HELM_VERSION) go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION) \
	    || { rm -f $(HELM); echo "helm could not be built: its tests will skip"; }; \
	else echo "no Go: helm is not built and tests/test_deploy_helm.py will skip"; fi

# The browser test drives Debian's Chromium: installed when missing (CI runs as root on
# Debian); quiet when it is already there.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	{ if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "chromium missing: 'apt-get install chromium chromium-driver' as root"; fi; }

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
	$(BIN)/mypy bench
	$(BIN)/lint-imports

bench: install
	@for b in bench/bridge.py bench/broker.py bench/graph.py bench/takes.py bench/e2e.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Faults at random under a steady stream (tests/soak.py); SOAK_SECONDS=3600 make soak.
SOAK_SECONDS ?= 300
soak: install
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest tests/soak.py -s -q --timeout 0

clean:
	rm -rf $(VENV) $(OLDEST) .kgcelery .pytest_cache .mypy_cache .ruff_cache *.egg-info
