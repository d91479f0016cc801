# The two commands: `make quickstart` (main job) and `make test` (the test suite).
VENV ?= .venv
BIN := $(VENV)/bin
# Offline data: ENCDEC_DATA_DIR if set, else ../shared/datasets when it exists; otherwise
# Multi30k is downloaded into ~/.cache/encdec/data on first use.
ENCDEC_DATA_DIR ?= $(if $(wildcard ../shared/datasets/multi30k),$(abspath ../shared/datasets),)
export ENCDEC_DATA_DIR
export HF_HUB_OFFLINE := 1
export WANDB_MODE ?= offline
QUICKSTART_RUN ?= runs/quickstart

.PHONY: install quickstart test clean

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,pretrained]"
	touch $@

install: $(BIN)/.installed

quickstart: install
	$(BIN)/encdec-train experiment=quickstart hydra.run.dir=$(QUICKSTART_RUN)
	$(BIN)/encdec-eval run_dir=$(QUICKSTART_RUN) checkpoint=last split=test decoding=beam
	@echo "--- sample translations (beam search) ---"
	@printf '%s\n' "Ein Mann fährt Fahrrad auf der Straße." "Zwei Hunde spielen im Schnee." \
	  "Eine Frau mit einem roten Hut liest ein Buch." \
	  | $(BIN)/encdec-predict run_dir=$(QUICKSTART_RUN) checkpoint=last input=- decoding=beam

# one pytest worker per core (2 by default); each test file stays on one worker, so its
# trained-once fixtures are built once; `make test TEST_WORKERS=0` runs in one process
TEST_WORKERS ?= 2
test: install
	$(BIN)/pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

clean:
	rm -rf runs/quickstart .pytest_cache
