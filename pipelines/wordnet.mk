# A real decoder on real words (`make demo-real`): WordNet 3.0's noun synsets (Debian's wordnet-base)
# as MMEB-format data (saha-wordnet), Qwen2.5-Coder-0.5B-Instruct's decoder as the text half of a
# Qwen2-VL (saha-init-model --text-from-gguf; the GGUF comes from pinned PyPI wheels), zero-shot
# evaluation with and without the hierarchical prompt levels, SaHa and the baseline miners with the
# synset false-negative audit, and the report. No training: this is the base model.

WORDNET_DIR ?= /usr/share/wordnet
TRAIN_PER_SUBSET ?= 48
EVAL_PER_SUBSET ?= 24
CANDIDATES ?= 5
DATA_ROOT := $(RUN_DIR)/data
DATA := $(DATA_ROOT)/train
EVAL_DATA := $(DATA_ROOT)/eval
IMAGE_ROOT := $(DATA_ROOT)
DATA_DEPS := $(DATA_ROOT)/wordnet.json
EVAL_DATA_DEPS := $(DATA_ROOT)/wordnet.json
PARAM_STAGES += wordnet
FLAGS_wordnet = $(strip $(call opt,--seed,SEED) --train-per-subset $(TRAIN_PER_SUBSET) \
  --eval-per-subset $(EVAL_PER_SUBSET) --candidates $(CANDIDATES))
ifeq ($(call active,$(DATA_ROOT)/wordnet.json data),yes)
$(DATA_ROOT)/wordnet.json: $(BIN)/saha-wordnet $(STAMPS)/wordnet.params
	@test -f $(WORDNET_DIR)/data.noun || { echo "$(WORDNET_DIR)/data.noun missing: apt-get install wordnet-base (Debian), or set WORDNET_DIR" >&2; exit 2; }
	$(BIN)/saha-wordnet --wordnet $(call squote,$(WORDNET_DIR)) --out $(DATA_ROOT) $(FLAGS_wordnet)
endif

# The hypernym subset's positives are category names, like a classification label set.
ALSO_CLASSIFICATION ?= WordNet_Hypernym
TASK_MAP ?= pipelines/wordnet-task-map.toml
# The hierarchical prompt: system-level task definitions per subset + the user-level instruction.
PROMPT_FILE ?= pipelines/wordnet-prompts.toml
PLAIN_PROMPT_FILE := pipelines/wordnet-plain.toml

# The real decoder, dequantised into the text half of a Qwen2-VL with a seeded random vision tower.
TOKENIZER ?= .tools/qwen-tokenizer/qwen2-vl-tokenizer.json
GGUF ?= .tools/qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct.gguf
MODEL ?= $(RUN_DIR)/model
MODEL_DEPS := $(MODEL)/config.json
PARAM_STAGES += init-model
FLAGS_init-model = $(strip --text-from-gguf $(call squote,$(GGUF)) $(call opt,--seed,MODEL_SEED) $(call opt,--arch,BACKBONE))
$(TOKENIZER):
	bash scripts/fetch-tokenizer.sh
$(GGUF):
	bash scripts/fetch-gguf.sh
ifeq ($(call active,$(RUN_DIR)/model/config.json model),yes)
$(RUN_DIR)/model/config.json: $(BIN)/saha-init-model $(STAMPS)/init-model.params | $(TOKENIZER) $(GGUF)
	$(BIN)/saha-init-model --out $(RUN_DIR)/model --tokenizer $(TOKENIZER) $(FLAGS_init-model)
endif

# The eval split again without the prompt levels: its own items, embeddings and scores under eval-plain/,
# the baseline the hierarchical prompt's scores are compared with (EVAL_COMPARE).
PLAIN_DIR := $(RUN_DIR)/eval-plain
PLAIN_PROMPT_OUT := $(PLAIN_DIR)/pairs.parquet $(PLAIN_DIR)/items.parquet $(PLAIN_DIR)/eval_lists.parquet \
  $(PLAIN_DIR)/skipped.parquet
PLAIN_OUT := $(PLAIN_DIR)/eval_scores.parquet $(PLAIN_DIR)/eval_report.md
EVAL_COMPARE ?= $(PLAIN_DIR)/eval_scores.parquet
PARAM_STAGES += prompt-plain
FLAGS_prompt-plain = --data $(call squote,$(EVAL_DATA)) --image-root $(call squote,$(IMAGE_ROOT)) --no-system \
  --prompt-file $(PLAIN_PROMPT_FILE)
ifeq ($(call active,$(PLAIN_PROMPT_OUT) prompt-plain),yes)
$(call outputs,$(PLAIN_PROMPT_OUT)) $(GROUPED) $(BIN)/saha-prompt $(STAMPS)/prompt-plain.params $(EVAL_DATA_DEPS) $(PLAIN_PROMPT_FILE)
	$(BIN)/saha-prompt $(FLAGS_prompt-plain) --out-dir $(PLAIN_DIR)
$(eval $(call followers,$(PLAIN_PROMPT_OUT)))
endif
ifeq ($(call active,$(PLAIN_DIR)/embeddings.parquet embed-plain),yes)
$(PLAIN_DIR)/embeddings.parquet: $(BIN)/saha-embed $(STAMPS)/embed.params $(PLAIN_PROMPT_OUT) $(MODEL_DEPS)
	$(BIN)/saha-embed --items $(PLAIN_DIR)/items.parquet --image-root $(call squote,$(IMAGE_ROOT)) \
	  --model $(call squote,$(MODEL)) --out $@ $(FLAGS_embed)
endif
ifeq ($(call active,$(PLAIN_OUT) eval-plain),yes)
$(call outputs,$(PLAIN_OUT)) $(GROUPED) $(BIN)/saha-eval $(PLAIN_PROMPT_OUT) $(PLAIN_DIR)/embeddings.parquet $(TASK_MAP)
	$(BIN)/saha-eval mmeb --pairs $(PLAIN_DIR)/pairs.parquet --items $(PLAIN_DIR)/items.parquet \
	  --eval-lists $(PLAIN_DIR)/eval_lists.parquet --embeddings $(PLAIN_DIR)/embeddings.parquet \
	  --out $(PLAIN_DIR)/eval_scores.parquet --report $(PLAIN_DIR)/eval_report.md --quiet --task-map $(TASK_MAP)
$(eval $(call followers,$(PLAIN_OUT)))
endif

.PHONY: data model prompt-plain embed-plain eval-plain demo-real
data: $(DATA_ROOT)/wordnet.json
model: $(MODEL_DEPS)
prompt-plain: $(PLAIN_PROMPT_OUT)
embed-plain: $(PLAIN_DIR)/embeddings.parquet
eval-plain: $(PLAIN_OUT)

ifneq ($(filter demo-real,$(MAKECMDGOALS)),)
REPORT_DEPS = $(FILTER_OUT) $(BASELINE_OUT) $(EVAL_OUT)
endif

demo-real: filter eval report | $(BIN)/saha-sql
	@echo
	@echo "== demo-real run '$(RUN)' in $(RUN_DIR)/: WordNet -> prompts -> Qwen2.5-Coder-0.5B decoder embeddings -> SaHa mining =="
	@$(BIN)/saha-sql --run $(RUN_DIR) -e "select subset, count(*) as pairs, count(distinct query_id) as queries, count(distinct target_id) as targets, count(distinct label) as synsets from pairs group by subset order by subset"
	@echo "Synset false-negative audit (share of mined negatives whose synset equals the anchor's):"
	@$(BIN)/saha-sql --run $(RUN_DIR) -e $(call squote,$(AUDIT_SQL))
	@echo "Zero-shot P@1 without and with the hierarchical prompt levels (eval-plain/, eval/):"
	@$(BIN)/saha-sql --run $(RUN_DIR) -e "select b.subset, round(100 * b.p_at_1, 1) as p1_plain, round(100 * a.p_at_1, 1) as p1_hierarchical, round(100 * b.mrr, 1) as mrr_plain, round(100 * a.mrr, 1) as mrr_hierarchical from eval_plain_eval_scores b join eval_scores a on a.subset = b.subset order by b.subset"
	@echo "Report with plots: $(RUN_DIR)/report.html"
