# Storefront: `make help` lists the targets. The shell logic lives in scripts/.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k checkout -x"`.
PYTEST_ARGS ?=
# Parallel test processes (pytest-xdist), e.g. `make test XDIST=auto`. Off by default: on a
# 2-core machine one process was faster (45 s against 59 s), as each xdist worker builds its own
# test database and the stack tests are mostly waiting on their own subprocesses.
XDIST ?= 0

# `make bench BENCH_MODE=full`: 10k / 100k / 1M products and 1M orders (quick: 10k and 100k).
BENCH_MODE ?= quick
# `make loadtest SHAPE=peak|large|stress|browse`, `LOADTEST_HOST=http://...` to load a running stack instead.
SHAPE ?= steady

export PYTHON VENV

PYTEST := STOREFRONT_ENV=test $(VENV)/bin/pytest
ifeq ($(XDIST),0)
PYTEST_PARALLEL :=
else
# loadgroup keeps tests marked xdist_group together (the browser tests share one server).
PYTEST_PARALLEL := -n $(XDIST) --dist loadgroup
endif

.PHONY: help install run test test-quick test-pgbouncer lint format docs docs-serve vendor clean distclean bench loadtest security compose-test faults

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "; print "Usage: make TARGET\n"} \
	     /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Create .venv and install Storefront with the dev extras (tests, lint)
	@scripts/bootstrap.sh --dev

run: ## Install, migrate, seed demo data once, collect static files, serve on 127.0.0.1:8000
	@scripts/run.sh

test: install ## Run the whole test suite (stack and browser tests included)
	$(PYTEST) $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-quick: install ## Run the tests that start no servers or browsers (-m "not stack")
	$(PYTEST) $(PYTEST_PARALLEL) -m "not stack" $(PYTEST_ARGS)

test-pgbouncer: install ## Run the app's database tests through PgBouncer (transaction pooling); needs pgbouncer and DATABASE_URL=postgres://...
	STOREFRONT_ENV=test $(VENV)/bin/python scripts/test_through_pgbouncer.py storefront -m "not stack" $(PYTEST_PARALLEL) $(PYTEST_ARGS)

lint: install ## Check formatting and lint rules (ruff), then the other pre-commit hooks
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	SKIP=ruff-format,ruff-check $(VENV)/bin/pre-commit run --all-files

format: install ## Format the code and apply safe lint fixes (ruff)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

docs: install ## Build the manual (docs/, MkDocs, strict: a warning fails) into var/docs-site/
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir var/docs-site

docs-serve: install ## Serve the manual with live reload on http://127.0.0.1:8001
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict --dev-addr 127.0.0.1:8001

bench: install ## Benchmark report (bench/REPORT.md); BENCH_MODE=quick (<10 min) or full
	$(VENV)/bin/python bench/run.py --mode $(BENCH_MODE)

loadtest: install ## Locust load test (loadtest/results/); SHAPE=steady (60 s), peak, large, browse or stress
	$(VENV)/bin/python loadtest/run.py --shape $(SHAPE)

security: install ## Scanners and scripted attacks on a production-profile stack (security/REPORT.md)
	@scripts/security_tools.sh
	$(VENV)/bin/python security/run.py $(if $(ONLY),--only $(ONLY),)

compose-test: install ## Build the Docker images and run the compose stack for real (tests/compose; needs root, docker.io)
	@scripts/compose_test.sh

faults: install ## Faults under load on a stack of its own (faults/REPORT.md, 11-14 min); ONLY=hup_sync,...
	$(VENV)/bin/python faults/run.py $(if $(ONLY),--only $(ONLY),)

vendor: ## Refresh storefront/static/vendor/ from package.json (needs npm)
	@scripts/vendor.sh

clean: ## Remove caches, test output and collected static files (keeps .venv and the database)
	rm -rf test-output .pytest_cache .ruff_cache build var/static var/cache var/docs-site
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean ## Also remove .venv and var/ (database, media): back to a fresh clone
	rm -rf $(VENV) .venv-security var *.egg-info
