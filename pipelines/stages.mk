# Rules shared by every pipeline: building the stage binaries, parameter stamps, and the
# stages every pipeline runs the same way on its own DATA / EVAL_DATA. Included after the
# pipeline file, so the pipeline's DATA_DEPS and defaults are known here.

.SECONDEXPANSION:

# A stage that writes several files has one rule for all of them (`outputs` and `followers` in
# functions.mk: a grouped rule, which `make -n` can follow), and every rule downstream depends on
# all of them, so `make -n` shows exactly the commands `make` would run.

# A stage binary is stale when its crate, the schema crate or the lock file changed; a rebuilt
# stage reruns. BUILD=0 takes the binaries in $(BIN) as they are (the tests do, having built them).
BUILD ?= 1
ifeq ($(BUILD),1)
crate_sources = $(shell find $(1) -name '*.rs' -o -name Cargo.toml 2>/dev/null)
COMMON_SOURCES := $(foreach c,common schemas mining prompting model,$(call crate_sources,$(c))) Cargo.toml Cargo.lock
# All binaries are built in one cargo call, so dependencies compile once with one feature set
# (the one `make test` uses) instead of once per stage.
$(BIN)/saha-%: $$(call crate_sources,stages/$$*) $(COMMON_SOURCES)
	$(CARGO) build --release --quiet --workspace --bins
	@touch $@
else
$(BIN)/saha-%: ;
endif

# Defaults a pipeline file may have set already. Real MMEB keeps duplicate rows, as the reference
# does (the synthetic demo has none, so the stricter stage default holds there).
DATA ?=
EVAL_DATA ?=
DATA_DEPS ?= $(call parquet_files,$(DATA))
EVAL_DATA_DEPS ?= $(call parquet_files,$(EVAL_DATA))
SYSTEM ?=
PROMPT_FILE ?=
PROMPT_FLAGS_EXTRA ?= $(if $(filter mmeb-%,$(PIPELINE)),--on-duplicate keep)
SPLIT ?=
EVAL_SPLIT ?=
SUBSETS ?=
EVAL_SUBSETS ?= $(SUBSETS)
MODEL ?=
# The backbone prompts are rendered for (saha-prompt --backbone; empty: its default, qwen2-vl). It must be
# MODEL's: saha-embed and saha-train refuse items rendered for another. The demo pipelines also make their
# tiny model of this architecture (saha-init-model --arch).
BACKBONE ?=

prompt_flags = $(strip --data $(call squote,$(1)) $(if $(2),--split $(2)) $(if $(3),--subsets $(3)) \
  --image-root $(call squote,$(IMAGE_ROOT)) $(call opt,--backbone,BACKBONE) $(if $(SYSTEM),--system $(call squote,$(SYSTEM))) \
  $(if $(PROMPT_FILE),--prompt-file $(call squote,$(PROMPT_FILE))) $(PROMPT_FLAGS_EXTRA))

PARAM_STAGES += prompt prompt-eval
FLAGS_prompt = $(call prompt_flags,$(DATA),$(SPLIT),$(SUBSETS))
FLAGS_prompt-eval = $(call prompt_flags,$(EVAL_DATA),$(EVAL_SPLIT),$(EVAL_SUBSETS))

PROMPT_OUT := $(RUN_DIR)/pairs.parquet $(RUN_DIR)/items.parquet $(RUN_DIR)/skipped.parquet
ifeq ($(call active,$(PROMPT_OUT) prompt),yes)
$(call outputs,$(PROMPT_OUT)) $(GROUPED) $(BIN)/saha-prompt $(STAMPS)/prompt.params $(DATA_DEPS) $(PROMPT_FILE)
	$(BIN)/saha-prompt $(FLAGS_prompt) --out-dir $(RUN_DIR)
$(eval $(call followers,$(PROMPT_OUT)))
endif

EVAL_PROMPT_OUT := $(RUN_DIR)/eval/pairs.parquet $(RUN_DIR)/eval/items.parquet \
  $(RUN_DIR)/eval/eval_lists.parquet $(RUN_DIR)/eval/skipped.parquet
ifeq ($(call active,$(EVAL_PROMPT_OUT) prompt-eval),yes)
$(call outputs,$(EVAL_PROMPT_OUT)) $(GROUPED) $(BIN)/saha-prompt $(STAMPS)/prompt-eval.params $(EVAL_DATA_DEPS) $(PROMPT_FILE)
	$(BIN)/saha-prompt $(FLAGS_prompt-eval) --out-dir $(RUN_DIR)/eval
$(eval $(call followers,$(EVAL_PROMPT_OUT)))
endif

.PHONY: prompt prompt-eval
prompt: $(PROMPT_OUT)
prompt-eval: $(EVAL_PROMPT_OUT)


# ---- Embedding: items.parquet -> embeddings.parquet with the Qwen2-VL snapshot in MODEL ---------
# DEVICE (cpu, cuda:N) and DTYPE (auto, f32, bf16, f16) go to every model stage: embedding and training.
# EMBED_FLAGS_EXTRA takes any other saha-embed flag (e.g. --shard 1/4).
EMBED_FLAGS_EXTRA ?=
MODEL_DEPS ?= $(if $(MODEL),$(MODEL)/config.json)
PARAM_STAGES += embed
FLAGS_compute = $(call opt,--device,DEVICE) $(call opt,--dtype,DTYPE)
FLAGS_embed = $(strip $(call opt,--resolution,RESOLUTION) $(call opt,--max-len,MAX_LEN) \
  $(call opt,--batch-tokens,BATCH_TOKENS) $(FLAGS_compute) $(EMBED_FLAGS_EXTRA))

# ---- SaHa mining: retrieve -> remap -> filter (SaHa and the baseline miners) -------------------
# EMBEDDINGS defaults to the embedding stage's output; point it elsewhere to mine other vectors.
# TOP_K and POOL_MULT go to retrieval (its depth, 2 * TOP_K * POOL_MULT unless POOL is set) and to
# the miners alike.
EMBEDDINGS ?= $(RUN_DIR)/embeddings.parquet
# ALLOW_MIXED_RUNS=1 lets the stages combine artefacts of different runs (e.g. EMBEDDINGS made for
# other items); without it they refuse the mix, naming both files.
ALLOW_MIXED_RUNS ?=
mixed_runs = $(if $(ALLOW_MIXED_RUNS),--allow-mixed-runs)
CLASSIFICATION ?=
ALSO_CLASSIFICATION ?=
BASELINES ?= topk positive-aware range
PARAM_STAGES += retrieve filter $(addprefix filter-,$(BASELINES))

RETRIEVE_FLAGS_EXTRA ?=
depth_flags = $(call opt,--top-k,TOP_K) $(call opt,--pool-mult,POOL_MULT)
FLAGS_retrieve = $(strip $(depth_flags) $(call opt,--pool,POOL) $(mixed_runs) $(RETRIEVE_FLAGS_EXTRA))
filter_flags = --strategy $(1) $(depth_flags) $(mixed_runs) \
  $(if $(CLASSIFICATION),--classification-subsets $(CLASSIFICATION)) \
  $(if $(ALSO_CLASSIFICATION),--also-classification $(ALSO_CLASSIFICATION))
FLAGS_filter = $(call filter_flags,saha)
$(foreach b,$(BASELINES),$(eval FLAGS_filter-$(b) = $$(call filter_flags,$(b))))

ifeq ($(call active,$(EMBEDDINGS) embed),yes)
ifeq ($(EMBEDDINGS),$(RUN_DIR)/embeddings.parquet)
$(EMBEDDINGS): $(BIN)/saha-embed $(STAMPS)/embed.params $(PROMPT_OUT) $(MODEL_DEPS)
	$(BIN)/saha-embed --items $(RUN_DIR)/items.parquet --image-root $(call squote,$(IMAGE_ROOT)) \
	  --model $(call squote,$(MODEL)) --out $@ $(FLAGS_embed)
else
$(EMBEDDINGS):
	@echo "EMBEDDINGS=$@ does not exist (unset EMBEDDINGS to have saha-embed make $(RUN_DIR)/embeddings.parquet)" >&2
	@exit 1
endif
endif

ifeq ($(call active,$(RUN_DIR)/eval/embeddings.parquet embed-eval),yes)
$(RUN_DIR)/eval/embeddings.parquet: $(BIN)/saha-embed $(STAMPS)/embed.params $(EVAL_PROMPT_OUT) $(MODEL_DEPS)
	$(BIN)/saha-embed --items $(RUN_DIR)/eval/items.parquet --image-root $(call squote,$(IMAGE_ROOT)) \
	  --model $(call squote,$(MODEL)) --out $@ $(FLAGS_embed)
endif

.PHONY: embed embed-eval
embed: $(EMBEDDINGS)
embed-eval: $(RUN_DIR)/eval/embeddings.parquet

ifeq ($(call active,$(RUN_DIR)/candidates.parquet retrieve),yes)
$(RUN_DIR)/candidates.parquet: $(BIN)/saha-retrieve $(STAMPS)/retrieve.params $(PROMPT_OUT) $(EMBEDDINGS)
	$(BIN)/saha-retrieve --pairs $(RUN_DIR)/pairs.parquet --embeddings $(EMBEDDINGS) --out $@ $(FLAGS_retrieve)
endif

ifeq ($(call active,$(RUN_DIR)/owners.parquet remap),yes)
$(RUN_DIR)/owners.parquet: $(BIN)/saha-remap $(RUN_DIR)/candidates.parquet
	$(BIN)/saha-remap --pairs $(RUN_DIR)/pairs.parquet --candidates $(RUN_DIR)/candidates.parquet --out $@ $(mixed_runs)
endif

MINING_INPUTS = $(PROMPT_OUT) $(EMBEDDINGS) $(RUN_DIR)/candidates.parquet $(RUN_DIR)/owners.parquet
FILTER_OUT := $(RUN_DIR)/clusters.parquet $(RUN_DIR)/mining_stats.parquet
mining_args = --pairs $(RUN_DIR)/pairs.parquet --embeddings $(EMBEDDINGS) \
  --candidates $(RUN_DIR)/candidates.parquet --owners $(RUN_DIR)/owners.parquet

ifeq ($(call active,$(RUN_DIR)/clusters.parquet $(RUN_DIR)/mining_stats.parquet filter),yes)
$(call outputs,$(FILTER_OUT)) $(GROUPED) $(BIN)/saha-filter $(STAMPS)/filter.params $(MINING_INPUTS)
	$(BIN)/saha-filter $(mining_args) --clusters $(RUN_DIR)/clusters.parquet --stats $(RUN_DIR)/mining_stats.parquet $(FLAGS_filter)
$(eval $(call followers,$(FILTER_OUT)))
endif

BASELINE_PATTERN := $(RUN_DIR)/mining/%/clusters.parquet $(RUN_DIR)/mining/%/mining_stats.parquet
ifeq ($(call active,$(foreach b,$(BASELINES),$(RUN_DIR)/mining/$(b)/clusters.parquet $(RUN_DIR)/mining/$(b)/mining_stats.parquet) filter),yes)
$(call outputs,$(BASELINE_PATTERN)) $(GROUPED) $(BIN)/saha-filter $(STAMPS)/filter-%.params $(MINING_INPUTS)
	$(BIN)/saha-filter $(mining_args) --clusters $(RUN_DIR)/mining/$*/clusters.parquet \
	  --stats $(RUN_DIR)/mining/$*/mining_stats.parquet $(FLAGS_filter-$*)
$(eval $(call followers,$(BASELINE_PATTERN)))
endif

.PRECIOUS: $(BASELINE_PATTERN)
BASELINE_STATS := $(foreach b,$(BASELINES),$(RUN_DIR)/mining/$(b)/mining_stats.parquet)
BASELINE_OUT := $(foreach b,$(BASELINES),$(RUN_DIR)/mining/$(b)/clusters.parquet $(RUN_DIR)/mining/$(b)/mining_stats.parquet)
AUDIT_SQL := select strategy, subset, pairs, clusters, round(mean_size, 2) as mean_size, negatives, \
  round(100 * false_negative_rate, 1) as fn_rate_pct from ( \
  select * from mining_stats $(foreach b,$(BASELINES),union all select * from $(subst -,_,$(b))_mining_stats) \
  ) order by subset, strategy

.PHONY: retrieve remap filter audit
retrieve: $(RUN_DIR)/candidates.parquet
remap: $(RUN_DIR)/owners.parquet
filter: $(FILTER_OUT) $(BASELINE_OUT)
audit: $(FILTER_OUT) $(BASELINE_OUT) | $(BIN)/saha-sql
	@echo "False-negative audit: share of mined negatives whose label equals the anchor's"
	@$(BIN)/saha-sql --run $(RUN_DIR) -e $(call squote,$(AUDIT_SQL))

# ---- Evaluation: MMEB-eval scores from eval/embeddings.parquet --------------------------------
# P@1 (ties to the ground truth, as the reference's argmax), hit@5 and MRR per subset, meta-task,
# IND/OOD and overall. TASK_MAP places subsets outside the 36 MMEB ones (the demo's synthetic ones
# in pipelines/demo-task-map.toml); EVAL_COMPARE=<earlier eval_scores.parquet> adds before/after
# deltas; EVAL_FLAGS_EXTRA takes other saha-eval mmeb flags (e.g. --expect-model NAME).
TASK_MAP ?= $(if $(filter demo,$(PIPELINE)),pipelines/demo-task-map.toml)
EVAL_COMPARE ?=
EVAL_FLAGS_EXTRA ?=
PARAM_STAGES += eval
# The tuned scores are compared with the base ones instead of EVAL_COMPARE's (FLAGS_eval_scoring).
FLAGS_eval_scoring = $(if $(TASK_MAP),--task-map $(call squote,$(TASK_MAP))) $(mixed_runs) $(EVAL_FLAGS_EXTRA)
FLAGS_eval = $(strip $(FLAGS_eval_scoring) $(if $(EVAL_COMPARE),--compare $(call squote,$(EVAL_COMPARE))))
EVAL_INPUTS := $(EVAL_PROMPT_OUT) $(RUN_DIR)/eval/embeddings.parquet
EVAL_OUT := $(RUN_DIR)/eval/eval_scores.parquet $(RUN_DIR)/eval/eval_report.md

ifeq ($(call active,$(EVAL_OUT) eval),yes)
$(call outputs,$(EVAL_OUT)) $(GROUPED) $(BIN)/saha-eval $(STAMPS)/eval.params $(EVAL_INPUTS) $(TASK_MAP) $(EVAL_COMPARE)
	$(BIN)/saha-eval mmeb --pairs $(RUN_DIR)/eval/pairs.parquet --items $(RUN_DIR)/eval/items.parquet \
	  --eval-lists $(RUN_DIR)/eval/eval_lists.parquet --embeddings $(RUN_DIR)/eval/embeddings.parquet \
	  --out $(RUN_DIR)/eval/eval_scores.parquet --report $(RUN_DIR)/eval/eval_report.md --quiet $(FLAGS_eval)
$(eval $(call followers,$(EVAL_OUT)))
endif

# The table is printed whether or not the scores were stale.
.PHONY: eval
eval: $(EVAL_OUT)
	@cat $(RUN_DIR)/eval/eval_report.md

# ---- SugarCrepe / SugarCrepe++ (optional) ------------------------------------------------------
# SUGARCREPE_DATA: a folder of <subset>.json files (or one file); SUGARCREPE_IMAGES: the folder their
# `filename`s are relative to (COCO val2017); SUGARCREPE_BENCHMARK: sugarcrepe or sugarcrepe++;
# SUGARCREPE_SUBSETS: comma-separated, default all of the benchmark's. Items are embedded with MODEL.
SUGARCREPE_DATA ?=
SUGARCREPE_IMAGES ?=
SUGARCREPE_BENCHMARK ?= sugarcrepe
SUGARCREPE_SUBSETS ?=
SC_DIR := $(RUN_DIR)/$(subst ++,_plus,$(SUGARCREPE_BENCHMARK))
PARAM_STAGES += sugarcrepe-items
FLAGS_sugarcrepe-items = $(strip --benchmark $(SUGARCREPE_BENCHMARK) --data $(call squote,$(SUGARCREPE_DATA)) \
  --image-root $(call squote,$(SUGARCREPE_IMAGES)) $(if $(SUGARCREPE_SUBSETS),--subsets $(SUGARCREPE_SUBSETS)))
SC_ITEMS := $(SC_DIR)/items.parquet $(SC_DIR)/sugarcrepe_sets.parquet
SC_OUT := $(SC_DIR)/sugarcrepe_scores.parquet $(SC_DIR)/sugarcrepe_report.md

ifneq ($(SUGARCREPE_DATA),)
ifeq ($(call active,$(SC_ITEMS) sugarcrepe),yes)
$(call outputs,$(SC_ITEMS)) $(GROUPED) $(BIN)/saha-eval $(STAMPS)/sugarcrepe-items.params $(shell find $(SUGARCREPE_DATA) -name '*.json' 2>/dev/null)
	$(BIN)/saha-eval sugarcrepe-items $(FLAGS_sugarcrepe-items) --out-dir $(SC_DIR)
$(eval $(call followers,$(SC_ITEMS)))
endif
ifeq ($(call active,$(SC_DIR)/embeddings.parquet sugarcrepe),yes)
$(SC_DIR)/embeddings.parquet: $(BIN)/saha-embed $(STAMPS)/embed.params $(SC_ITEMS) $(MODEL_DEPS)
	$(BIN)/saha-embed --items $(SC_DIR)/items.parquet --image-root $(call squote,$(SUGARCREPE_IMAGES)) \
	  --model $(call squote,$(MODEL)) --out $@ $(FLAGS_embed)
endif
ifeq ($(call active,$(SC_OUT) sugarcrepe),yes)
$(call outputs,$(SC_OUT)) $(GROUPED) $(BIN)/saha-eval $(SC_ITEMS) $(SC_DIR)/embeddings.parquet
	$(BIN)/saha-eval sugarcrepe --sets $(SC_DIR)/sugarcrepe_sets.parquet --embeddings $(SC_DIR)/embeddings.parquet \
	  --out $(SC_DIR)/sugarcrepe_scores.parquet --report $(SC_DIR)/sugarcrepe_report.md --quiet
$(eval $(call followers,$(SC_OUT)))
endif
endif

.PHONY: sugarcrepe
sugarcrepe: $(if $(SUGARCREPE_DATA),$(SC_OUT))
	@test -n "$(SUGARCREPE_DATA)" || { echo 'make sugarcrepe: set SUGARCREPE_DATA=<folder of <subset>.json> and SUGARCREPE_IMAGES=<COCO val2017>' >&2; exit 2; }
	@cat $(SC_DIR)/sugarcrepe_report.md

# ---- Training: clusters.parquet -> adapter (or full weights), then the eval set embedded again ------
# TRAIN_FULL=1 trains every weight (saha-train --full) and gives a snapshot instead of an adapter.
# A rebuilt target starts over (--overwrite replaces the earlier run's checkpoints) unless
# TRAIN_FLAGS_EXTRA=--resume continues it.
TRAIN_FULL ?=
TRAIN_FLAGS_EXTRA ?=
PARAM_STAGES += train
FLAGS_train = $(strip $(call opt,--adapter,ADAPTER) $(call opt,--max-steps,TRAIN_STEPS) \
  $(call opt,--clusters-per-step,CLUSTERS_PER_STEP) $(call opt,--lr,LR) $(call opt,--warmup-steps,WARMUP) \
  $(call opt,--chunk,CHUNK) $(if $(TRAIN_FULL),--full) $(FLAGS_compute) $(mixed_runs) $(TRAIN_FLAGS_EXTRA))
TRAINED := $(RUN_DIR)/train/$(if $(TRAIN_FULL),model/model.safetensors,adapter/adapter_model.safetensors)
TUNED_MODEL_ARGS = $(if $(TRAIN_FULL),--model $(RUN_DIR)/train/model,--model $(call squote,$(MODEL)) --adapter $(RUN_DIR)/train/adapter)

ifeq ($(call active,$(TRAINED) train),yes)
$(TRAINED): $(BIN)/saha-train $(STAMPS)/train.params $(FILTER_OUT) $(PROMPT_OUT) $(MODEL_DEPS)
	$(BIN)/saha-train --clusters $(RUN_DIR)/clusters.parquet --items $(RUN_DIR)/items.parquet \
	  --image-root $(call squote,$(IMAGE_ROOT)) --model $(call squote,$(MODEL)) --out-dir $(RUN_DIR)/train \
	  $(if $(filter --resume,$(FLAGS_train)),,--overwrite) $(FLAGS_train)
endif

ifeq ($(call active,$(RUN_DIR)/eval/tuned/embeddings.parquet embed-tuned),yes)
$(RUN_DIR)/eval/tuned/embeddings.parquet: $(BIN)/saha-embed $(STAMPS)/embed.params $(EVAL_PROMPT_OUT) $(TRAINED)
	$(BIN)/saha-embed --items $(RUN_DIR)/eval/items.parquet --image-root $(call squote,$(IMAGE_ROOT)) \
	  $(TUNED_MODEL_ARGS) --out $@ $(FLAGS_embed)
endif

TUNED_OUT := $(RUN_DIR)/eval/tuned/eval_scores.parquet $(RUN_DIR)/eval/tuned/eval_report.md
ifeq ($(call active,$(TUNED_OUT) eval-tuned),yes)
$(call outputs,$(TUNED_OUT)) $(GROUPED) $(BIN)/saha-eval $(STAMPS)/eval.params $(EVAL_INPUTS) $(EVAL_OUT) \
  $(RUN_DIR)/eval/tuned/embeddings.parquet $(TASK_MAP)
	$(BIN)/saha-eval mmeb --pairs $(RUN_DIR)/eval/pairs.parquet --items $(RUN_DIR)/eval/items.parquet \
	  --eval-lists $(RUN_DIR)/eval/eval_lists.parquet --embeddings $(RUN_DIR)/eval/tuned/embeddings.parquet \
	  --out $(RUN_DIR)/eval/tuned/eval_scores.parquet --report $(RUN_DIR)/eval/tuned/eval_report.md --quiet \
	  --compare $(RUN_DIR)/eval/eval_scores.parquet $(strip $(FLAGS_eval_scoring))
$(eval $(call followers,$(TUNED_OUT)))
endif

.PHONY: train embed-tuned eval-tuned
train: $(TRAINED)
embed-tuned: $(RUN_DIR)/eval/tuned/embeddings.parquet
eval-tuned: $(TUNED_OUT)
	@cat $(RUN_DIR)/eval/tuned/eval_report.md

# ---- Report: report.html, one self-contained page (inline SVG charts) of whatever the run has ----
# Every input is optional: a missing one leaves its section saying so, and the report reruns when
# any input it read changes. A pipeline may add REPORT_DEPS (artefacts to make first: the demo
# does under `make demo`). REPORT_SCORES lists the P@1 section's series as LABEL=FILE (FILE in the run;
# empty: before and after training). REPORT_FLAGS_EXTRA takes other saha-report flags (e.g. --bins 60).
REPORT_DEPS ?=
REPORT_SCORES ?=
REPORT_FLAGS_EXTRA ?=
PARAM_STAGES += report
FLAGS_report = $(strip --embeddings $(call squote,$(EMBEDDINGS)) $(foreach b,$(BASELINES),--baseline $(b)) \
  $(foreach s,$(REPORT_SCORES),--scores $(call squote,$(s))) $(REPORT_FLAGS_EXTRA))
REPORT_INPUTS = $(RUN_DIR)/clusters.parquet $(RUN_DIR)/mining_stats.parquet \
  $(foreach b,$(BASELINES),$(RUN_DIR)/mining/$(b)/clusters.parquet $(RUN_DIR)/mining/$(b)/mining_stats.parquet) \
  $(EMBEDDINGS) $(RUN_DIR)/train/train_log.parquet $(RUN_DIR)/eval/eval_scores.parquet \
  $(RUN_DIR)/eval/tuned/eval_scores.parquet $(foreach s,$(REPORT_SCORES),$(RUN_DIR)/$(lastword $(subst =, ,$(s))))

ifeq ($(call active,$(RUN_DIR)/report.html report),yes)
$(RUN_DIR)/report.html: $(BIN)/saha-report $(STAMPS)/report.params $(sort $(wildcard $(REPORT_INPUTS)) $(REPORT_DEPS))
	$(BIN)/saha-report --run $(RUN_DIR) --out $@ $(FLAGS_report)
endif

.PHONY: report
report: $(RUN_DIR)/report.html

# ---- Parameter stamps (last, once every stage has added itself to PARAM_STAGES) -------------
# Parameter stamps. $(STAMPS)/<stage>.params holds the stage's flags and is rewritten, while the
# Makefile is read, only when they changed: its mtime moves exactly when the stage must rerun.
# Under `make -n` nothing is written; a changed stamp is marked out of date instead, so the dry
# run shows exactly the commands a real run would.
.PHONY: FORCE
FORCE:
stamp_stale = $(shell printf '%s\n' $(call squote,$(FLAGS_$(1))) | cmp -s - $(STAMPS)/$(1).params || echo stale)
define stamp_rule
ifneq ($$(call stamp_stale,$(1)),)
ifeq ($$(dry_run),)
$$(shell mkdir -p $$(STAMPS) && printf '%s\n' $$(call squote,$$(FLAGS_$(1))) > $$(STAMPS)/.$(1).tmp && mv -f $$(STAMPS)/.$(1).tmp $$(STAMPS)/$(1).params)
else
$$(STAMPS)/$(1).params: FORCE
endif
endif
endef
ifneq ($(filter-out help test build sql,$(or $(MAKECMDGOALS),help)),)
$(foreach s,$(sort $(PARAM_STAGES)),$(eval $(call stamp_rule,$(s))))
endif
$(STAMPS)/%.params: ;
# Stamps reached through pattern rules would otherwise count as intermediate files and be deleted.
.PRECIOUS: $(STAMPS)/%.params
