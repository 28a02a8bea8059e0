# The two commands of the README:  `make demo` (the main job)  and  `make test`.
# Both create .venv on first use and reuse it afterwards (a stamp records what was installed).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vltseg_d2-installed
PYTEST_ARGS ?=

.PHONY: install test format demo gpu-check clean-venv

install: $(STAMP)

$(STAMP): setup.py tools/install_detectron2.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) tools/install_detectron2.py
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# lint and format check first (seconds), then the tests
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS) tests

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: $(STAMP)
	$(PY) tools/run_demo.py

# on a machine with a CUDA GPU: the CUDA tests and the Rein-L figures (docs/benchmarks/gpu_<device>.json)
gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py

clean-venv:
	rm -rf $(VENV)
