# TransformerLens 3.9 reference venv (.venv-tl3, git-ignored): used by tests/test_tl3_compat.py
# (round trip: our checkpoints load with strict=True into TL 3's HookedTransformer), by
# `make bench` (speed is measured against TL 3.9's HookedTransformer) and to regenerate
# tests/fixtures/tl3_*. The main Makefile does `include mk/tl3.mk`.
#
# torch is installed first, pinned, so that transformer-lens does not pull a multi-GB CUDA
# build.

TL3_VENV ?= .venv-tl3
TL3_BASE_PYTHON ?= python3
TL3_TORCH ?= torch==2.13.0
TL3_TL ?= transformer-lens>=3.9,<4
# grokinterp's analyses also run inside it, on TL 3's HookedTransformer (tests/test_bridge.py): its other deps.
TL3_EXTRAS ?= scipy>=1.10
TL3_TORCH_PIP_ARGS ?=
TL3_PYTHON := $(TL3_VENV)/bin/python
TL3_STAMP := $(TL3_VENV)/.grokinterp-installed

.PHONY: tl3-venv tl3-fixtures tl3-clean

tl3-venv: $(TL3_STAMP)

# The stamp is written last, so an interrupted install is redone on the next call.
$(TL3_STAMP): mk/tl3.mk
	@test -x $(TL3_PYTHON) || $(TL3_BASE_PYTHON) -m venv $(TL3_VENV)
	$(TL3_PYTHON) -m pip install $(TL3_TORCH_PIP_ARGS) "$(TL3_TORCH)"
	$(TL3_PYTHON) -m pip install "$(TL3_TL)" "$(TL3_TORCH)" $(foreach pkg,$(TL3_EXTRAS),"$(pkg)")
	$(TL3_PYTHON) -c "import importlib.metadata as m, torch; print('TL', m.version('transformer-lens'), 'torch', torch.__version__)"
	@touch $@

# Regenerate the TL 3 reference fixtures (commit them with the script).
tl3-fixtures: $(TL3_STAMP)
	$(TL3_PYTHON) -W ignore::DeprecationWarning tests/fixtures/make_tl3_fixture.py

tl3-clean:
	rm -rf $(TL3_VENV)
