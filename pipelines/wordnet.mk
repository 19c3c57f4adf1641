# A real decoder on real words (`make demo-real`): WordNet 3.0's noun synsets (Debian's wordnet-base)
# as MMEB-format data (saha-wordnet), Qwen2.5-Coder-0.5B-Instruct's decoder as the text half of a
# Qwen2-VL (saha-init-model --text-from-gguf; the GGUF comes from pinned PyPI wheels), zero-shot
# evaluation with the hierarchical prompt, without its system level and without either, SaHa and the
# baseline miners with the synset false-negative audit, a short DoRA fine-tune on SaHa's clusters
# evaluated before and after, and the report.

WORDNET_DIR ?= /usr/share/wordnet
# Every eval item is embedded four times (three prompts, then the fine-tune) at about 2 items/s on 2 cores:
# the candidates of a subset are its queries' positives and hard distractors, shared as MMEB's are.
TRAIN_PER_SUBSET ?= 32
EVAL_PER_SUBSET ?= 32
CANDIDATES ?= 64
HARD_DISTRACTORS ?= 2
DATA_ROOT := $(RUN_DIR)/data
DATA := $(DATA_ROOT)/train
EVAL_DATA := $(DATA_ROOT)/eval
IMAGE_ROOT := $(DATA_ROOT)
DATA_DEPS := $(DATA_ROOT)/wordnet.json
EVAL_DATA_DEPS := $(DATA_ROOT)/wordnet.json
PARAM_STAGES += wordnet
FLAGS_wordnet = $(strip $(call opt,--seed,SEED) --train-per-subset $(TRAIN_PER_SUBSET) \
  --eval-per-subset $(EVAL_PER_SUBSET) --candidates $(CANDIDATES) --hard-distractors $(HARD_DISTRACTORS))
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

# The eval split again with other prompts, each in eval-<variant>/ with its own items, embeddings and
# scores, from saha-prompt with VARIANT_FLAGS_<variant>: no-system is the reference's ablation without the
# system level (no system block, as its Q_prompt/D_prompt left unset give; the user-level instruction
# "Represent the given text in one word." kept), plain has neither level. The hierarchical prompt's scores
# (eval/) are compared with EVAL_COMPARE's.
PROMPT_VARIANTS ?= plain no-system
VARIANT_FLAGS_no-system ?= --no-system
VARIANT_FLAGS_plain ?= --no-system --prompt-file $(PLAIN_PROMPT_FILE)
EVAL_COMPARE ?= $(RUN_DIR)/eval-plain/eval_scores.parquet
variant_prompt_out = $(addprefix $(RUN_DIR)/eval-$(1)/,pairs.parquet items.parquet eval_lists.parquet skipped.parquet)
variant_out = $(RUN_DIR)/eval-$(1)/eval_scores.parquet $(RUN_DIR)/eval-$(1)/eval_report.md
VARIANT_SCORES := $(foreach v,$(PROMPT_VARIANTS),$(RUN_DIR)/eval-$(v)/eval_scores.parquet)

define variant_rules
PARAM_STAGES += prompt-$(1)
FLAGS_prompt-$(1) = --data $$(call squote,$$(EVAL_DATA)) --image-root $$(call squote,$$(IMAGE_ROOT)) $$(VARIANT_FLAGS_$(1))
ifeq ($$(call active,$$(call variant_prompt_out,$(1)) prompt-$(1)),yes)
$$(call outputs,$$(call variant_prompt_out,$(1))) $$(GROUPED) $$(BIN)/saha-prompt $$(STAMPS)/prompt-$(1).params $$(EVAL_DATA_DEPS) \
  $$(filter %.toml %.json,$$(VARIANT_FLAGS_$(1)))
	$$(BIN)/saha-prompt $$(FLAGS_prompt-$(1)) --out-dir $$(RUN_DIR)/eval-$(1)
$$(eval $$(call followers,$$(call variant_prompt_out,$(1))))
endif
ifeq ($$(call active,$$(RUN_DIR)/eval-$(1)/embeddings.parquet embed-$(1)),yes)
$$(RUN_DIR)/eval-$(1)/embeddings.parquet: $$(BIN)/saha-embed $$(STAMPS)/embed.params $$(call variant_prompt_out,$(1)) $$(MODEL_DEPS)
	$$(BIN)/saha-embed --items $$(RUN_DIR)/eval-$(1)/items.parquet --image-root $$(call squote,$$(IMAGE_ROOT)) \
	  --model $$(call squote,$$(MODEL)) --out $$@ $$(FLAGS_embed)
endif
ifeq ($$(call active,$$(call variant_out,$(1)) eval-$(1)),yes)
$$(call outputs,$$(call variant_out,$(1))) $$(GROUPED) $$(BIN)/saha-eval $$(call variant_prompt_out,$(1)) \
  $$(RUN_DIR)/eval-$(1)/embeddings.parquet $$(TASK_MAP)
	$$(BIN)/saha-eval mmeb --pairs $$(RUN_DIR)/eval-$(1)/pairs.parquet --items $$(RUN_DIR)/eval-$(1)/items.parquet \
	  --eval-lists $$(RUN_DIR)/eval-$(1)/eval_lists.parquet --embeddings $$(RUN_DIR)/eval-$(1)/embeddings.parquet \
	  --out $$(RUN_DIR)/eval-$(1)/eval_scores.parquet --report $$(RUN_DIR)/eval-$(1)/eval_report.md --quiet $$(strip $$(FLAGS_eval_scoring))
$$(eval $$(call followers,$$(call variant_out,$(1))))
endif
.PHONY: prompt-$(1) embed-$(1) eval-$(1)
prompt-$(1): $$(call variant_prompt_out,$(1))
embed-$(1): $$(RUN_DIR)/eval-$(1)/embeddings.parquet
eval-$(1): $$(call variant_out,$(1))
endef
$(foreach v,$(PROMPT_VARIANTS),$(eval $(call variant_rules,$(v))))

# A short DoRA fine-tune of the real decoder on SaHa's clusters of the training split, then the eval split
# embedded again with the adapter (eval/tuned/), scored against the hierarchical prompt's zero-shot scores.
ADAPTER ?= dora
TRAIN_STEPS ?= 3
CLUSTERS_PER_STEP ?= 1
LR ?= 1e-3
WARMUP ?= 1
CHUNK ?= 4
TRAIN_FLAGS_EXTRA ?= --rank 4 --alpha 8 --max-len 96

# The report's P@1 chart and table: the three prompts zero-shot, then the hierarchical one after DoRA.
REPORT_SCORES ?= plain=eval-plain/eval_scores.parquet no-system=eval-no-system/eval_scores.parquet \
  hierarchical=eval/eval_scores.parquet hierarchical+DoRA=eval/tuned/eval_scores.parquet

.PHONY: data model demo-real
data: $(DATA_ROOT)/wordnet.json
model: $(MODEL_DEPS)

ifneq ($(filter demo-real,$(MAKECMDGOALS)),)
REPORT_DEPS = $(FILTER_OUT) $(BASELINE_OUT) $(EVAL_OUT) $(TUNED_OUT) $(VARIANT_SCORES)
endif

# One row per subset and their mean: P@1 and MRR with each prompt zero-shot, then after the DoRA fine-tune.
P1_SQL := with s as (select p.subset, p.p_at_1 as p_plain, n.p_at_1 as p_nosys, h.p_at_1 as p_hier, \
  t.p_at_1 as p_dora, p.mrr as m_plain, n.mrr as m_nosys, h.mrr as m_hier, t.mrr as m_dora, h.n as queries \
  from eval_plain_eval_scores p join eval_no_system_eval_scores n on n.subset = p.subset \
  join eval_scores h on h.subset = p.subset join tuned_eval_scores t on t.subset = p.subset) \
  select subset, queries, round(100 * p_plain, 1) as p1_plain, round(100 * p_nosys, 1) as p1_no_system, \
  round(100 * p_hier, 1) as p1_hierarchical, round(100 * p_dora, 1) as p1_hier_dora, \
  round(100 * m_plain, 1) as mrr_plain, round(100 * m_nosys, 1) as mrr_no_system, \
  round(100 * m_hier, 1) as mrr_hierarchical, round(100 * m_dora, 1) as mrr_hier_dora from ( \
  select * from s union all select 'mean' as subset, avg(p_plain), avg(p_nosys), avg(p_hier), avg(p_dora), \
  avg(m_plain), avg(m_nosys), avg(m_hier), avg(m_dora), sum(queries) from s) order by subset = 'mean', subset

demo-real: filter eval $(VARIANT_SCORES) eval-tuned report | $(BIN)/saha-sql
	@echo
	@echo "== demo-real run '$(RUN)' in $(RUN_DIR)/: WordNet -> prompts -> Qwen2.5-Coder-0.5B decoder embeddings -> SaHa mining -> DoRA =="
	@$(BIN)/saha-sql --run $(RUN_DIR) -e "select subset, count(*) as pairs, count(distinct query_id) as queries, count(distinct target_id) as targets, count(distinct label) as synsets from pairs group by subset order by subset"
	@echo "Synset false-negative audit (share of mined negatives whose synset equals the anchor's):"
	@$(BIN)/saha-sql --run $(RUN_DIR) -e $(call squote,$(AUDIT_SQL))
	@echo "Evaluation: $(EVAL_PER_SUBSET) queries per subset, $(CANDIDATES) candidates each (up to $(HARD_DISTRACTORS) hard distractors)."
	@echo "P@1 and MRR zero-shot with no prompt level (plain), the user-level instruction only (no_system) and the"
	@echo "hierarchical prompt, then the hierarchical prompt after $(TRAIN_STEPS) DoRA steps on SaHa's clusters (hier_dora):"
	@$(BIN)/saha-sql --run $(RUN_DIR) -e $(call squote,$(P1_SQL))
	@echo "Report with plots: $(RUN_DIR)/report.html"
