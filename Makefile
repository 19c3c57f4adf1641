# saha: turn a generative multimodal LLM into an embedding model (Ju & Lee, arXiv 2508.00955).
#
#   make [PIPELINE=demo|mmeb-train|mmeb-eval] [RUN=name] [DATA=...] [EVAL_DATA=...]
#        [IMAGE_ROOT=...] [MODEL=...] [SUBSETS=...] [SPLIT=...] TARGET
#
# Every artefact is a file under $(RUNS_DIR)/$(RUN)/, so `make` reruns only what is stale,
# `make -B <artefact>` reruns one stage, and a change of a stage's parameters (a stamp file per
# stage, rewritten only when its content changes) reruns that stage and what depends on it.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:
.DEFAULT_GOAL := help

PIPELINE ?= demo
RUN ?= $(PIPELINE)
RUNS_DIR ?= runs
RUN_DIR := $(RUNS_DIR)/$(RUN)
STAMPS := $(RUN_DIR)/.params

CARGO ?= cargo
CARGO_TARGET_DIR ?= target
export CARGO_TARGET_DIR
BIN ?= $(CARGO_TARGET_DIR)/release

PIPELINES := $(filter-out functions stages,$(basename $(notdir $(wildcard pipelines/*.mk))))
ifeq ($(filter $(PIPELINE),$(PIPELINES)),)
$(error PIPELINE=$(PIPELINE): no pipelines/$(PIPELINE).mk; choose one of: $(PIPELINES))
endif

include pipelines/functions.mk
include pipelines/$(PIPELINE).mk
include pipelines/stages.mk

# `make demo-real` is the wordnet pipeline's demo (pipelines/wordnet.mk), in runs/demo-real unless RUN is given.
ifneq ($(PIPELINE),wordnet)
.PHONY: demo-real
demo-real:
	@$(MAKE) --no-print-directory PIPELINE=wordnet $(if $(filter command line,$(origin RUN)),,RUN=demo-real) demo-real
endif

.PHONY: help test sql build bench-mining bench-embed bench-train cuda gpu-bundle
help:
	@echo "saha: hierarchical embedding prompt + SaHa hard negatives, as make-driven stages"
	@echo
	@echo "Targets:"
	@echo "  demo        the whole pipeline on bundled synthetic data (PIPELINE=demo)"
	@echo "  demo-real   a real 0.5B decoder on WordNet: zero-shot eval with the hierarchical prompt, without its"
	@echo "              system level and without either; SaHa vs baselines with the synset false-negative audit;"
	@echo "              a short DoRA fine-tune evaluated before and after; report (PIPELINE=wordnet)"
	@echo "  test        install test prerequisites and run every test (cargo test --release)"
	@echo "  data        generate the synthetic dataset (demo pipeline)"
	@echo "  prompt      pairs.parquet + items.parquet from DATA (hierarchical prompts)"
	@echo "  prompt-eval eval/pairs.parquet + eval/items.parquet + eval/eval_lists.parquet from EVAL_DATA"
	@echo "  model       (demo) the tiny random Qwen2-VL snapshot from saha-init-model"
	@echo "  embed       embeddings.parquet: items.parquet through the Qwen2-VL snapshot in MODEL"
	@echo "  embed-eval  eval/embeddings.parquet from eval/items.parquet"
	@echo "  retrieve    candidates.parquet: top-POOL targets per query (needs EMBEDDINGS)"
	@echo "  remap       owners.parquet: owner queries of every retrieved target"
	@echo "  filter      clusters.parquet + mining_stats.parquet (SaHa) and mining/<baseline>/ for BASELINES"
	@echo "  audit       false-negative rates of SaHa next to the baselines"
	@echo "  train       train/: LoRA/DoRA adapter (or TRAIN_FULL=1 weights) from SaHa's clusters (saha-train)"
	@echo "  eval-tuned  the eval split embedded with the trained weights, scored and compared with the base"
	@echo "  eval        eval/eval_scores.parquet + eval/eval_report.md: MMEB P@1 (hit@5, MRR) per subset,"
	@echo "              meta-task, IND/OOD and overall, from eval/embeddings.parquet; prints the table"
	@echo "  sugarcrepe  SugarCrepe(++) accuracy: SUGARCREPE_DATA JSON files -> items -> MODEL embeddings -> scores"
	@echo "  report      report.html: one self-contained HTML page with plots of whatever the run has (similarities"
	@echo "              per miner, false-negative audit, cluster sizes, loss and lr, P@1 before/after)"
	@echo "  sql         run Q=\"SQL\" over every Parquet file of the run (tables named by file stem)"
	@echo "  build       build the stage binaries into $(BIN)"
	@echo "  bench-mining  mining stages vs GEMM peak and numpy (N=100000 DIM=1536 by default), then"
	@echo "                few-label subsets (LABELS=\"24 2\": N pairs sharing 24, then 2 targets); FAST=0 / NUMPY=0 skip parts;"
	@echo "                INT8_KERNEL=vnni|avx2 names fast mode's int8 kernel (default: vnni if the CPU has it, else avx2)"
	@echo "  bench-embed   candle Qwen2-VL embedding items/s and peak memory vs transformers on this CPU"
	@echo "                (ROUNDS=3 runs of each side, alternating; the ratio is the rounds' median)"
	@echo "  bench-train   candle DoRA training steps/s and peak memory vs PyTorch + PEFT (tiny and small config;"
	@echo "                ROUNDS=3 runs of each side, alternating)"
	@echo "  cuda          CUDA saha-embed/saha-train/benches into CUDA_TARGET_DIR (pinned PyPI CUDA 13.0, no GPU needed)"
	@echo "  gpu-bundle    gpu-bundle/: what the GPU check needs (< 60 MiB); on the GPU machine: bash check.sh"
	@echo "  help        this text"
	@echo
	@echo "Variables (current value):"
	@echo "  PIPELINE=$(PIPELINE)   pipelines: $(PIPELINES)"
	@echo "  RUN=$(RUN)   artefacts go to $(RUN_DIR)/"
	@echo "  DATA=$(DATA)"
	@echo "  EVAL_DATA=$(EVAL_DATA)"
	@echo "  IMAGE_ROOT=$(IMAGE_ROOT)"
	@echo "  SPLIT=$(SPLIT)  EVAL_SPLIT=$(EVAL_SPLIT)  SUBSETS=$(SUBSETS)"
	@echo "  MODEL=$(MODEL)"
	@echo "  BACKBONE=$(call shown,BACKBONE)   (qwen2-vl, qwen2.5-vl, qwen3-vl: the prompts' template, and the demo model's architecture)"
	@echo "  SYSTEM=$(SYSTEM)   (empty: the reference system prompt)"
	@echo "  PROMPT_FILE=$(PROMPT_FILE)  PROMPT_FLAGS_EXTRA=$(PROMPT_FLAGS_EXTRA)"
	@echo "  (stage default): not passed, so the stage's own default applies (see <stage> --help)"
	@echo "  RESOLUTION=$(call shown,RESOLUTION)  MAX_LEN=$(call shown,MAX_LEN)  BATCH_TOKENS=$(call shown,BATCH_TOKENS)"
	@echo "  DEVICE=$(call shown,DEVICE)  DTYPE=$(call shown,DTYPE)   (embedding and training: cpu or cuda:N; auto, f32, bf16, f16)"
	@echo "  EMBED_FLAGS_EXTRA=$(EMBED_FLAGS_EXTRA)"
	@echo "  EMBEDDINGS=$(EMBEDDINGS)  ALLOW_MIXED_RUNS=$(ALLOW_MIXED_RUNS) (1: accept artefacts of other runs, e.g. such EMBEDDINGS)"
	@echo "  TOP_K=$(call shown,TOP_K)  POOL_MULT=$(call shown,POOL_MULT)  POOL=$(call shown,POOL)"
	@echo "  RETRIEVE_FLAGS_EXTRA=$(RETRIEVE_FLAGS_EXTRA)   (e.g. --mode fast)"
	@echo "  CLASSIFICATION=$(CLASSIFICATION) (empty: the reference list)  ALSO_CLASSIFICATION=$(ALSO_CLASSIFICATION)"
	@echo "  BASELINES=$(BASELINES)"
	@echo "  ADAPTER=$(call shown,ADAPTER)  TRAIN_STEPS=$(call shown,TRAIN_STEPS)  CLUSTERS_PER_STEP=$(call shown,CLUSTERS_PER_STEP)"
	@echo "  LR=$(call shown,LR)  WARMUP=$(call shown,WARMUP)  CHUNK=$(call shown,CHUNK)  TRAIN_FULL=$(TRAIN_FULL)  TRAIN_FLAGS_EXTRA=$(TRAIN_FLAGS_EXTRA)"
	@echo "  TASK_MAP=$(TASK_MAP)  (meta-task / IND-OOD of non-MMEB subsets)  EVAL_COMPARE=$(EVAL_COMPARE)"
	@echo "  EVAL_FLAGS_EXTRA=$(EVAL_FLAGS_EXTRA)   (e.g. --expect-model NAME)"
	@echo "  SUGARCREPE_DATA=$(SUGARCREPE_DATA)  SUGARCREPE_IMAGES=$(SUGARCREPE_IMAGES)"
	@echo "  SUGARCREPE_BENCHMARK=$(SUGARCREPE_BENCHMARK) (or sugarcrepe++)  SUGARCREPE_SUBSETS=$(SUGARCREPE_SUBSETS)"
	@echo "  Q=\"...\"     SQL for 'make sql'"

test:
	bash scripts/setup-test.sh
	$(CARGO) build --release --workspace --bins
	$(CARGO) test --release --workspace

build:
	$(CARGO) build --release --workspace --bins

# N queries x N targets x DIM dimensions; the defaults are the issue's 100k x 100k x 1536. LABELS lists the
# few-label cases (N pairs sharing that many targets); LABELS= skips them.
bench-mining: build
	BIN=$(BIN) N=$(or $(N),100000) DIM=$(or $(DIM),1536) OUT=$(RUNS_DIR)/bench-mining \
	  FAST=$(or $(FAST),1) NUMPY=$(or $(NUMPY),1) INT8_KERNEL=$(INT8_KERNEL) LABELS="$(if $(filter undefined,$(origin LABELS)),24 2,$(LABELS))" bash scripts/bench-mining.sh

# A small but non-trivial random Qwen2-VL (hidden 512, 8 layers, vision depth 4): text-only and image+text
# batches in candle and in transformers (sdpa, and eager unless EAGER=0), same inputs, THREADS threads each.
bench-embed: build
	BIN=$(BIN) OUT=$(RUNS_DIR)/bench-embed$(if $(BACKBONE),-$(BACKBONE)) THREADS=$(or $(THREADS),$(shell nproc)) ITERS=$(or $(ITERS),5) ROUNDS=$(or $(ROUNDS),3) EAGER=$(or $(EAGER),1) BACKBONE=$(or $(BACKBONE),qwen2-vl) bash scripts/bench-embed.sh

# DoRA training steps (GradCache chunk 4, and plain backprop) on the tiny and a small random Qwen2-VL, in candle
# and in PyTorch + PEFT, same batch, same adapter tensors, THREADS threads each, ROUNDS (3) alternating runs
# of each side; 2-3 minutes a round on 2 idle cores.
bench-train: build
	BIN=$(BIN) OUT=$(RUNS_DIR)/bench-train THREADS=$(or $(THREADS),$(shell nproc)) EAGER=$(or $(EAGER),0) ROUNDS=$(or $(ROUNDS),3) bash scripts/bench-train.sh

# CUDA-enabled saha-embed and saha-train, built here with no GPU and no system CUDA toolkit: a pinned CUDA 13.0
# toolchain from PyPI (scripts/fetch-cuda.sh), a stub libcuda.so.1, kernels for CUDA_COMPUTE_CAP (90: H100/H200).
# Its own target folder, so the CPU binaries in BIN stay as they are; the first build takes 15-30 minutes.
CUDA_TARGET_DIR ?= $(CARGO_TARGET_DIR)-cuda
CUDA_BIN := $(CUDA_TARGET_DIR)/release
cuda:
	@env=$$(bash scripts/fetch-cuda.sh) && . "$$env" && \
	  CARGO_TARGET_DIR=$(CUDA_TARGET_DIR) $(CARGO) build --release --bins -p saha-embed -p saha-train -p saha-tests \
	    --features saha-embed/cuda,saha-train/cuda,saha-tests/cuda
	@# The kernels the CUDA ops launch are in the PTX (the stub driver lets the test start; no GPU needed).
	@env=$$(bash scripts/fetch-cuda.sh) && . "$$env" && LD_LIBRARY_PATH="$$(dirname "$$env")/link:$$LD_LIBRARY_PATH" \
	  CARGO_TARGET_DIR=$(CUDA_TARGET_DIR) $(CARGO) test --release -p saha-model --features cuda --lib fused::cuda
	@ls -l $(CUDA_BIN)/saha-embed $(CUDA_BIN)/saha-train $(CUDA_BIN)/saha-bench-embed $(CUDA_BIN)/saha-bench-train \
	  $(CUDA_BIN)/saha-check-kernels

# What the GPU machine needs in one folder under 60 MiB (it has no Rust and no network): the CUDA binaries
# (xz-compressed), saha-init-model, the parity fixtures and scripts/gpu/. See scripts/gpu/README.md.
GPU_BUNDLE ?= gpu-bundle
gpu-bundle: cuda build
	BIN=$(BIN) CUDA_BIN=$(CUDA_BIN) OUT=$(GPU_BUNDLE) bash scripts/gpu/bundle.sh

sql: | $(BIN)/saha-sql
	@test -n "$(Q)" || { echo 'make sql: pass the query as Q="select ..."' >&2; exit 2; }
	$(BIN)/saha-sql --run $(RUN_DIR) -e $(call squote,$(Q))
