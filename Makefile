# Entry points. Each target creates the environments it needs if they are missing.
#   make demo       the research loop on the offline default: a scripted coder takes one TopK idea through
#                   real edits and real runs of Gemma 3 270M activations on the CPU
#   make test       the test suite, offline, on the CPU
#   make setup      only create the environments (does nothing when they are in place)
#   make baseline   templates/sae_variants/run_0 on the offline default (Gemma 3 270M, gensim Wikipedia, CPU),
#                   built when missing or made by other code or settings (the launcher does the same)

ORCH_VENV := .venv
ORCH_PY := $(ORCH_VENV)/bin/python
ORCH_STAMP := $(ORCH_VENV)/.installed
TEMPLATE := templates/sae_variants
TEMPLATE_VENV := $(TEMPLATE)/.venv
TEMPLATE_PY := $(TEMPLATE_VENV)/bin/python
TEMPLATE_STAMP := $(TEMPLATE_VENV)/.installed

.PHONY: demo test setup baseline clean-baseline

$(ORCH_STAMP): requirements.txt
	[ -x $(ORCH_PY) ] || python3 -m venv $(ORCH_VENV)
	$(ORCH_PY) -m pip install --quiet --upgrade pip
	$(ORCH_PY) -m pip install --quiet -r requirements.txt
	touch $(ORCH_STAMP)

$(TEMPLATE_STAMP): $(TEMPLATE)/requirements.txt $(TEMPLATE)/requirements-nodeps.txt $(TEMPLATE)/constraints-cpu.txt $(TEMPLATE)/setup_env.sh
	bash $(TEMPLATE)/setup_env.sh

setup: $(ORCH_STAMP) $(TEMPLATE_STAMP)

baseline: setup
	$(ORCH_PY) -m scientist.baseline $(TEMPLATE) && cd $(TEMPLATE) && .venv/bin/python plot.py

demo: setup
	$(ORCH_PY) launch_scientist.py --experiment sae_variants --model demo --max-runs 2

test: setup
	$(TEMPLATE_PY) -m pytest tests/template -q
	$(ORCH_PY) -m pytest tests/scientist -q

clean-baseline:
	rm -rf $(TEMPLATE)/run_0 $(TEMPLATE)/run_0.stale-*
