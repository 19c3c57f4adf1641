# The embedded default: a small synthetic MMEB-format dataset made by saha-synth, so the whole
# pipeline runs on a laptop with no downloads. DATA / EVAL_DATA / IMAGE_ROOT point into it.

TRAIN_PER_SUBSET ?= 256
EVAL_PER_SUBSET ?= 48
DATA_ROOT := $(RUN_DIR)/data
DATA := $(DATA_ROOT)/train
EVAL_DATA := $(DATA_ROOT)/eval
IMAGE_ROOT := $(DATA_ROOT)/images
DATA_DEPS := $(DATA_ROOT)/synth.json
EVAL_DATA_DEPS := $(DATA_ROOT)/synth.json

# The synthetic classification subset skips SaHa's query-space re-sort, like ImageNet_1K.
ALSO_CLASSIFICATION ?= ShapeClass
PARAM_STAGES += synth
FLAGS_synth = $(strip $(call opt,--seed,SEED) --train-per-subset $(TRAIN_PER_SUBSET) --eval-per-subset $(EVAL_PER_SUBSET))
ifeq ($(call active,$(DATA_ROOT)/synth.json data),yes)
$(DATA_ROOT)/synth.json: $(BIN)/saha-synth $(STAMPS)/synth.params
	$(BIN)/saha-synth --out $(DATA_ROOT) $(FLAGS_synth)
endif

# The tiny random Qwen2-VL (hidden 64, 2 layers, real Qwen2 tokenizer) the demo embeds with; BACKBONE=qwen2.5-vl
# makes it a Qwen2.5-VL.
TOKENIZER ?= .tools/qwen-tokenizer/qwen2-vl-tokenizer.json
MODEL ?= $(RUN_DIR)/model
MODEL_DEPS := $(MODEL)/config.json
PARAM_STAGES += init-model
FLAGS_init-model = $(strip $(call opt,--seed,MODEL_SEED) $(call opt,--arch,BACKBONE))
$(TOKENIZER):
	bash scripts/fetch-tokenizer.sh
ifeq ($(call active,$(RUN_DIR)/model/config.json model),yes)
$(RUN_DIR)/model/config.json: $(BIN)/saha-init-model $(STAMPS)/init-model.params | $(TOKENIZER)
	$(BIN)/saha-init-model --out $(RUN_DIR)/model --tokenizer $(TOKENIZER) $(FLAGS_init-model)
endif

.PHONY: data demo model
model: $(MODEL_DEPS)
data: $(DATA_ROOT)/synth.json

# Training on the demo: the tiny random model learns best with every weight trained (LoRA on random
# weights barely moves held-out P@1), a higher learning rate and a short schedule.
TRAIN_FULL ?= 1
TRAIN_STEPS ?= 150
CLUSTERS_PER_STEP ?= 4
LR ?= 3e-4
WARMUP ?= 10
CHUNK ?= 0

# Phony prerequisites: their file lists are defined in stages.mk, which is read after this file.
# Under `make demo` the report follows every demo artefact (and waits for them under make -j);
# `make report` alone reports whatever the run has.
ifneq ($(filter demo,$(MAKECMDGOALS)),)
REPORT_DEPS = $(FILTER_OUT) $(BASELINE_OUT) $(EVAL_OUT) $(TUNED_OUT)
endif

demo: embed embed-eval filter eval eval-tuned report | $(BIN)/saha-sql
	@echo
	@echo "== demo run '$(RUN)' in $(RUN_DIR)/: synthetic data -> prompts -> tiny Qwen2-VL embeddings -> SaHa mining =="
	@$(BIN)/saha-sql --run $(RUN_DIR) -e "select subset, count(*) as pairs, count(distinct query_id) as queries, count(distinct target_id) as targets, count(distinct label) as labels from pairs group by subset order by subset"
	@$(BIN)/saha-sql --run $(RUN_DIR) -e "select side, role, count(*) as items, sum(case when image_path is null then 0 else 1 end) as with_image from items group by side, role order by side"
	@echo "False-negative audit (share of mined negatives whose label equals the anchor's):"
	@$(BIN)/saha-sql --run $(RUN_DIR) -e $(call squote,$(AUDIT_SQL))
	@echo "Held-out P@1 before and after training (eval/eval_report.md, eval/tuned/eval_report.md):"
	@$(BIN)/saha-sql --run $(RUN_DIR) -e "select b.subset, round(100 * b.p_at_1, 1) as p1_before, round(100 * a.p_at_1, 1) as p1_after from eval_scores b join tuned_eval_scores a on a.subset = b.subset order by b.subset"
	@echo "Training log: $(RUN_DIR)/train/train_log.parquet (make sql Q=\"select step, loss, lr from train_log\")"
	@echo "Report with plots (mining, audit, cluster sizes, training, P@1): $(RUN_DIR)/report.html"
	@echo "Inspect any artefact with SQL, e.g.: make sql Q=\"select prompt from items limit 2\""
