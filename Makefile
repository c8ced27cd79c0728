# The README's commands. `make demo` sets up and shows the whole product on a workload;
# `make run` starts the gateway; `make test` runs lint and the whole suite (6-15 min on 2
# cores; it starts its own Redis Stack and fake upstream); `make test-fast` the unit tests
# (under a minute), the inner loop.
.PHONY: install demo run test test-fast lint bench redis clean

install: .venv/.installed

.venv/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh
	touch $@

demo: install
	.venv/bin/vetcache demo

run: install
	bash scripts/run-local.sh

test: lint
	.venv/bin/pytest

test-fast: install
	.venv/bin/pytest -q tests/unit

# Static checks: style, types, the package import graph (proxy -> audit -> cache), module
# and function sizes, and the generated files (configuration reference, PrometheusRule).
lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/python -m tests.tools.imports
	.venv/bin/python -m tests.tools.sizes
	.venv/bin/python scripts/config_reference.py --check
	.venv/bin/python scripts/sync-prometheusrule.py --check

bench: install
	.venv/bin/python tests/bench/overhead.py

redis:
	bash scripts/redis-stack.sh start 6379

clean:
	rm -rf .venv .cache .pytest_cache .mypy_cache .ruff_cache
