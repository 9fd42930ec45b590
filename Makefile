# The course in two commands (README): `make lab` starts it, `make test` runs the tests.
# Both create the virtual environment $(VENV) when it is missing (torch first: the pinned CPU
# wheel; an unpinned torch pulls a multi-GB CUDA build), then the package with its dev
# extras; once made, it is reused (reinstalled only when pyproject.toml is newer).
#
#   make lab                    JupyterLab on notebooks/ (LAB_ARGS="--port=8899 --no-browser")
#   make test                   the unit tests and every notebook under nbval, in CI mode
#   make results                the results table again, as results/README.md says (long)
#   make site                   the course as a website, in $(SITE) (README: "The course as a
#                               website"); offline, about 2.5 minutes
#   make check FILE=path/to/01_attention.ipynb
#                               your score on the visible checks of your copy of a notebook
#                               (the released one you work in; not notebooks/, the instructor's)
#
# Variables: PYTHON (makes the venv), VENV, TORCH (e.g. TORCH="torch --index-url
# https://download.pytorch.org/whl/cpu" where PyPI serves CUDA builds), LAB_ARGS, PYTEST_ARGS,
# FILE, SITE (where `make site` writes; its sources go beside it, in $(SITE)-work).

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
LAB_ARGS ?=
PYTEST_ARGS ?=
FILE ?=
SITE ?= build/site

STAMP := $(VENV)/.minbert-installed
# recipes run the venv's python, pip and jupyter, as after `. $(VENV)/bin/activate`
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(VIRTUAL_ENV)/bin:$(PATH)

.PHONY: env lab test results check site

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	python -m pip install -q $(TORCH)
	python -m pip install -q -e ".[dev]"
	touch $@

lab: $(STAMP)
	jupyter lab notebooks/ $(LAB_ARGS)

test: $(STAMP)
	MINBERT_CI=1 python -m pytest --nbval-lax tests notebooks $(PYTEST_ARGS)

# the commands of results/README.md (tests/test_layout.py keeps the two the same)
results: $(STAMP)
	python -m minbert.report.experiments run --all --seeds 1 --preset cpu --results results --runs runs/experiments
	python -m minbert.report.experiments run --rows 2 4 6 8 9 --seeds 3 --preset cpu --results results --runs runs/experiments
	python -m minbert.report.experiments table --results results

check: $(STAMP)
	python -m minbert.check "$(FILE)"

# the student's hand-out, run in CI mode, rendered by Sphinx (site/build.py says how)
site: $(STAMP)
	python site/build.py --out $(SITE)

# make check FILE=...: the student's own notebook. notebooks/ holds the instructor copies,
# solutions written out (always full marks): refused, as is no FILE, before anything runs.
ifneq ($(filter check,$(MAKECMDGOALS)),)
ifeq ($(strip $(FILE)),)
$(error make check FILE=path/to/01_attention.ipynb: give your own copy of a notebook, the \
released one you work in)
endif
ifneq ($(filter $(realpath notebooks)/%,$(or $(realpath $(FILE)),$(abspath $(FILE)))),)
$(error make check FILE=$(FILE): that is an instructor copy (solutions written out: always \
full marks); give your own copy, the released one you work in)
endif
endif
