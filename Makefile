# make demo: create .venv if needed and run the default pipeline into runs/default
#            (organisms -> behaviour -> figures -> report.md).
# make test: create .venv if needed and run the test suite (offline, CPU).
# TORCH: the torch requirement installed first. The default is the CPU build; on a GPU
# node install your CUDA torch into .venv yourself and pass TORCH= (empty) to keep it.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
RUN ?= runs/default
CONFIG ?= default
export HF_HUB_OFFLINE = 1

.PHONY: demo test quick clean-venv

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	if [ -n "$(TORCH)" ]; then $(VENV)/bin/pip install -q $(TORCH); fi
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/saelab run --config $(CONFIG) --out $(RUN)

quick: $(VENV)/.installed
	$(VENV)/bin/saelab run --config quick --out runs/quick

test: $(VENV)/.installed
	$(VENV)/bin/pytest -q

clean-venv:
	rm -rf $(VENV)
