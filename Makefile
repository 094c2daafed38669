# Entry points. Each target creates the environments it needs if they are missing.
#   make demo       the research loop on the offline default: a scripted coder takes one TopK idea through
#                   real edits and real runs of Gemma 3 270M activations on the CPU, then writes, compiles and
#                   reviews the paper (paper.pdf, review.json) and lists it in results/sae_variants/index.html
#   make demo-synth the same loop on the ground-truth preset synth-cpu (a synthetic model with known features, no
#                   language model): a scripted TopK-at-the-true-L0 idea scored by F1 and MCC against the true
#                   features, with the true dictionary's scores as the reference line, in a few minutes
#   make demo-tree  a scripted tree search on synth-cpu (--search tree): six nodes, two at once, a failing draft
#                   fixed, the best node chosen by code and re-run on seeds, tree.html, the paper
#   make test       the test suite, offline, on the CPU
#   make setup      only create the environments (the orchestrator's and each template's) and install the Debian
#                   packages (does nothing when they are in place)
#   make baseline   templates/sae_variants/run_0 on the offline default (Gemma 3 270M, gensim Wikipedia, CPU),
#                   built when missing or made by other code or settings (the launcher does the same)

ORCH_VENV := .venv
ORCH_PY := $(ORCH_VENV)/bin/python
ORCH_STAMP := $(ORCH_VENV)/.installed
TEMPLATE := templates/sae_variants
TEMPLATE_VENV := $(TEMPLATE)/.venv
TEMPLATE_PY := $(TEMPLATE_VENV)/bin/python
TEMPLATE_STAMP := $(TEMPLATE_VENV)/.installed
# The second template, a grokking experiment in under a minute on the CPU; the tests take it through a whole launch.
GROKKING := templates/modular_arithmetic
GROKKING_STAMP := $(GROKKING)/.venv/.installed
# Debian packages: LaTeX for the paper, chktex for its lint, pdftotext for the reviewers, chromium to test the report,
# bubblewrap to sandbox the runs.
DEBIAN_PACKAGES := texlive-latex-base texlive-latex-recommended texlive-fonts-recommended chktex poppler-utils chromium \
	bubblewrap
DEBIAN_COMMANDS := pdflatex bibtex chktex pdftotext chromium bwrap
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo demo-synth demo-tree test setup debian baseline clean-baseline

debian:
	@missing=""; for c in $(DEBIAN_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages (missing:$$missing)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES); \
	fi

$(ORCH_STAMP): requirements.txt
	[ -x $(ORCH_PY) ] || python3 -m venv $(ORCH_VENV)
	$(ORCH_PY) -m pip install --quiet --upgrade pip
	$(ORCH_PY) -m pip install --quiet -r requirements.txt
	touch $(ORCH_STAMP)

$(TEMPLATE_STAMP): $(TEMPLATE)/requirements.txt $(TEMPLATE)/requirements-nodeps.txt $(TEMPLATE)/constraints-cpu.txt $(TEMPLATE)/setup_env.sh
	bash $(TEMPLATE)/setup_env.sh

$(GROKKING_STAMP): $(GROKKING)/requirements.txt $(GROKKING)/constraints-cpu.txt $(GROKKING)/setup_env.sh
	bash $(GROKKING)/setup_env.sh

setup: debian $(ORCH_STAMP) $(TEMPLATE_STAMP) $(GROKKING_STAMP)

baseline: setup
	$(ORCH_PY) -m scientist.experiment.baseline $(TEMPLATE) && cd $(TEMPLATE) && .venv/bin/python plot.py

demo: setup
	$(ORCH_PY) launch_scientist.py --experiment sae_variants --model demo --max-runs 2

demo-synth: setup
	$(ORCH_PY) launch_scientist.py --experiment sae_variants --model demo --max-runs 2 --preset synth-cpu \
		--demo-script demo/synth_script.json

demo-tree: setup
	$(ORCH_PY) launch_scientist.py --experiment sae_variants --model demo --preset synth-cpu \
		--demo-script demo/tree_script.json --search tree --max-nodes 6 --parallel-nodes 2 --search-drafts 2 \
		--debug-probability 1 --seeds 3

test: setup
	$(ORCH_PY) -m ruff check .
	$(TEMPLATE_PY) -m pytest tests/template -q
	$(ORCH_PY) -m pytest tests/scientist -q

clean-baseline:
	rm -rf $(TEMPLATE)/run_0 $(TEMPLATE)/run_0.stale-*
