# The README's commands. `make demo` sets up and shows the whole product on a workload;
# `make run` starts the gateway; `make test` runs the tests.
.PHONY: install demo run test lint bench redis clean

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

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench: install
	.venv/bin/python tests/bench/overhead.py

redis:
	bash scripts/redis-stack.sh start 6379

clean:
	rm -rf .venv .cache .pytest_cache .mypy_cache .ruff_cache
