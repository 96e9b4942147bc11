# grokinterp: `make train` then `make analyze`; `make test` runs the suite.
# The venv bootstraps itself: CPU torch 2.13.0 first (a plain `torch` would pull a CUDA build), then the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.grokinterp-installed
# CI adds ray,slurm so the sweep backends are tested.
EXTRAS ?= dev
RUN ?= checkpoints/quick
export OMP_NUM_THREADS ?= 2
# Passive OpenMP waiting: spinning threads collapse 2-thread training when anything else runs (bench/bench_omp.py).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: venv train train-nanda analyze serve test test-slow bench clean help repro-warn claims

help:
	@echo "make train      train the quick preset into $(RUN) (resumes if interrupted)"
	@echo "make analyze    replay $(RUN) and write $(RUN)/report.html"
	@echo "make serve      the live lab on http://127.0.0.1:8050 over $(RUNS_DIR) (installs the [app] extra)"
	@echo "make test       run the test suite (slow reproductions excluded)"
	@echo "make test-slow  run only the slow reproductions"
	@echo "make bench      speed benchmarks against the TL 3.9 reference"
	@echo "make train-nanda  Nanda et al.'s configuration (the probe-stencil write-up's baseline) into checkpoints/nanda"
	@echo "make repro-NAME   one of the source documents' experiments -> docs/reproductions/NAME.md (grokinterp repro --help)"
	@echo "make repro-warn   the related-work papers' early-warning alarm benchmark -> docs/reproductions/warn.md"
	@echo "make claims     the claims ledger docs/claims.md, from the committed reproduction data"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]'
	@touch $@

train: $(STAMP)
	$(BIN)/grokinterp train --preset quick --out $(RUN) --resume $(ARGS)

train-nanda: $(STAMP)
	$(BIN)/grokinterp train --preset nanda --out checkpoints/nanda --resume $(ARGS)

analyze: $(STAMP)
	$(BIN)/grokinterp analyze $(RUN) $(ARGS)

# The live lab (grokinterp.app): Dash is an optional extra, installed here on first use.
RUNS_DIR ?= checkpoints
serve: $(STAMP)
	@$(BIN)/python -c "import dash" 2>/dev/null || $(BIN)/pip install -q --disable-pip-version-check -e '.[$(EXTRAS),app]'
	@mkdir -p $(RUNS_DIR)
	$(BIN)/grokinterp serve $(RUNS_DIR) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(ARGS)

# The related-work papers' alarm benchmark: 20 grokking seeds of the `fast` preset at wd 1
# (docs/reproductions/warn_sweep.json) scored against two control groups (docs/reproductions/warn_controls.json,
# 12 seeds each, 1,500 steps): wd 0 (the old controls: they differ in weight decay, which alone moves the weight
# norm and logit scale) and the random-table task at wd 1 (matched: memorizable, never generalizable). A checkpoint
# every 10 steps so the DMD signal's 20-checkpoint window and the lock-in signal's 45 checkpoints fit before grokking.
# `grokinterp repro warn` trains both (finished runs skipped), replays and scores them, and writes the page and
# its data (docs/reproductions/data/warn/, from which `grokinterp repro warn --doc-only` rewrites the page).
repro-warn: $(STAMP)
	$(BIN)/grokinterp repro warn --workers 2 $(ARGS)

# The source documents' experiments (stencil, beta1, wd, grokfast, cycle, ...): long, never in CI.
repro-%: $(STAMP)
	$(BIN)/grokinterp repro $* $(ARGS)

# The claims ledger: needs only the committed data under docs/reproductions/data/.
claims: $(STAMP)
	$(BIN)/grokinterp claims $(ARGS)

bench: $(STAMP)
	@for f in bench/bench_*.py; do [ $$f = bench/bench_sweep.py ] && continue; echo "== $$f"; $(BIN)/python $$f || exit 1; done

# 30 runs of the fast preset (about 15 minutes): kept out of `make bench`.
bench-sweep: $(STAMP)
	$(BIN)/python bench/bench_sweep.py $(ARGS)

clean:
	rm -rf $(VENV) .venv-tl3 build *.egg-info .pytest_cache

include mk/tl3.mk
