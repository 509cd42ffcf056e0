# make demo: create .venv if needed, run the default pipeline into runs/default
#            (organisms -> behaviour -> ... -> figures -> report.md) and build its feature
#            browser into runs/default-browser (open index.html); then `make pair-demo`:
#            the model-pair pipeline on a tiny random-weight Qwen2 pair into runs/pair-tiny.
# make test: create .venv if needed and run the test suite (offline, CPU). The browser test
#            needs `make browser-deps` (Debian's chromium + chromium-driver) and skips without it.
# TORCH: the torch requirement installed first. The default is the CPU build; on a GPU
# node install your CUDA torch into .venv yourself and pass TORCH= (empty) to keep it.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
RUN ?= runs/default
CONFIG ?= default
export HF_HUB_OFFLINE = 1

.PHONY: demo pair-demo real-demo real-models real-findings findings test test-real quick browser-deps clean-venv

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	if [ -n "$(TORCH)" ]; then $(VENV)/bin/pip install -q $(TORCH); fi
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/saelab run --config $(CONFIG) --out $(RUN)
	$(VENV)/bin/saelab browse $(RUN) --out $(RUN)-browser --overwrite
	$(MAKE) pair-demo

# The model-pair pipeline on a tiny random-weight Qwen2 pair (CPU stand-in for a real pair).
pair-demo: $(VENV)/.installed
	test -f models/tiny-qwen2/perturbed/config.json || $(VENV)/bin/saelab tiny-pair --arch qwen2 --out models/tiny-qwen2
	$(VENV)/bin/saelab run --config pair-tiny --out runs/pair-tiny

# A real pretrained model on CPU (README "Real models on CPU"): SmolLM2-135M-Instruct from the
# GGUF wheel on the package index; the run fine-tunes it on generated word problems (sft-cot:
# the pair's base) and that with the memorising noisy-trace recipe (the variant), then runs
# every pair stage, the report and the browser.
REAL = models/smollm2-135m-instruct
real-models: $(VENV)/.installed
	test -f $(REAL)/saelab-model.json || $(VENV)/bin/saelab get-model smollm2-135m-instruct --out $(REAL)
	test -f models/gemma3-270m/saelab-model.json || $(VENV)/bin/saelab get-model gemma3-270m --out models/gemma3-270m

real-demo: $(VENV)/.installed
	test -f $(REAL)/saelab-model.json || $(VENV)/bin/saelab get-model smollm2-135m-instruct --out $(REAL)
	$(VENV)/bin/saelab run --config pair-smollm2-cpu --out runs/real-demo
	$(VENV)/bin/saelab browse runs/real-demo --out runs/real-demo-browser --overwrite

# The literature's findings on the real model over seeds 0-2 (README "The literature's findings on
# a real model"): six fine-tunes of SmolLM2 per seed, then TIP, ASC, DPO against SFT and the
# instructions; runs/real-findings/seed-S/report.md and runs/real-findings/aggregate.md.
real-findings: $(VENV)/.installed
	test -f $(REAL)/saelab-model.json || $(VENV)/bin/saelab get-model smollm2-135m-instruct --out $(REAL)
	$(VENV)/bin/saelab sweep --config pair-smollm2-findings --seeds 0 1 2 --out runs/real-findings

# The tests that need the real models (marked `real`; `make test` leaves them out).
test-real: real-models
	$(VENV)/bin/pytest -q -m real

# The literature's findings on organisms over seeds 0-2 (behaviour only: faithfulness, ASC, TIP,
# DPO against SFT, instructions):
# runs/findings/seed-S/report.md per seed and runs/findings/aggregate.md over the seeds.
findings: $(VENV)/.installed
	$(VENV)/bin/saelab sweep --config findings --seeds 0 1 2 --out runs/findings

quick: $(VENV)/.installed
	$(VENV)/bin/saelab run --config quick --out runs/quick

test: $(VENV)/.installed
	$(VENV)/bin/pytest -q

# Debian's Chromium and ChromeDriver for the browser test (skipped without them).
browser-deps:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

clean-venv:
	rm -rf $(VENV)
