# Entry points. Each target creates the environment it needs if it is missing.
#   make demo       the main job on the offline default (today: the trained baseline run_0 and its plots)
#   make test       the test suite, offline, on the CPU
#   make setup      only create the environments (does nothing when they are in place)
#   make baseline   templates/sae_variants/run_0 on the offline default (Gemma 3 270M, gensim Wikipedia, CPU)

TEMPLATE := templates/sae_variants
TEMPLATE_VENV := $(TEMPLATE)/.venv
TEMPLATE_PY := $(TEMPLATE_VENV)/bin/python
TEMPLATE_STAMP := $(TEMPLATE_VENV)/.installed

.PHONY: demo test setup baseline clean-baseline

$(TEMPLATE_STAMP): $(TEMPLATE)/requirements.txt $(TEMPLATE)/requirements-nodeps.txt $(TEMPLATE)/constraints-cpu.txt $(TEMPLATE)/setup_env.sh
	bash $(TEMPLATE)/setup_env.sh

setup: $(TEMPLATE_STAMP)

baseline: setup
	cd $(TEMPLATE) && .venv/bin/python experiment.py --out_dir=run_0 && .venv/bin/python plot.py

demo: baseline

test: setup
	$(TEMPLATE_PY) -m pytest tests -q

clean-baseline:
	rm -rf $(TEMPLATE)/run_0
