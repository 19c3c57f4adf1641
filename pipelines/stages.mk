# Rules shared by every pipeline: building the stage binaries, parameter stamps, and the
# stages every pipeline runs the same way on its own DATA / EVAL_DATA. Included after the
# pipeline file, so the pipeline's DATA_DEPS and defaults are known here.

.SECONDEXPANSION:

# A stage binary is stale when its crate, the schema crate or the lock file changed; a rebuilt
# stage reruns. BUILD=0 takes the binaries in $(BIN) as they are (the tests do, having built them).
BUILD ?= 1
ifeq ($(BUILD),1)
crate_sources = $(shell find $(1) -name '*.rs' -o -name Cargo.toml 2>/dev/null)
COMMON_SOURCES := $(call crate_sources,schemas) Cargo.toml Cargo.lock
$(BIN)/saha-%: $$(call crate_sources,stages/$$*) $(COMMON_SOURCES)
	$(CARGO) build --release --quiet -p saha-$* --bin saha-$*
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

prompt_flags = $(strip --data $(call squote,$(1)) $(if $(2),--split $(2)) $(if $(3),--subsets $(3)) \
  --image-root $(call squote,$(IMAGE_ROOT)) $(if $(SYSTEM),--system $(call squote,$(SYSTEM))) \
  $(if $(PROMPT_FILE),--prompt-file $(call squote,$(PROMPT_FILE))) $(PROMPT_FLAGS_EXTRA))

FLAGS_prompt = $(call prompt_flags,$(DATA),$(SPLIT),$(SUBSETS))
FLAGS_prompt-eval = $(call prompt_flags,$(EVAL_DATA),$(EVAL_SPLIT),$(EVAL_SUBSETS))

PROMPT_OUT := $(RUN_DIR)/pairs.parquet $(RUN_DIR)/items.parquet $(RUN_DIR)/skipped.parquet
$(PROMPT_OUT) &: $(BIN)/saha-prompt $(STAMPS)/prompt.params $(DATA_DEPS) $(PROMPT_FILE)
	$(BIN)/saha-prompt $(FLAGS_prompt) --out-dir $(RUN_DIR)

EVAL_PROMPT_OUT := $(RUN_DIR)/eval/pairs.parquet $(RUN_DIR)/eval/items.parquet \
  $(RUN_DIR)/eval/eval_lists.parquet $(RUN_DIR)/eval/skipped.parquet
$(EVAL_PROMPT_OUT) &: $(BIN)/saha-prompt $(STAMPS)/prompt-eval.params $(EVAL_DATA_DEPS) $(PROMPT_FILE)
	$(BIN)/saha-prompt $(FLAGS_prompt-eval) --out-dir $(RUN_DIR)/eval

.PHONY: prompt prompt-eval
prompt: $(PROMPT_OUT)
prompt-eval: $(EVAL_PROMPT_OUT)

# Parameter stamps. $(STAMPS)/<stage>.params holds the stage's flags and is rewritten, while the
# Makefile is read, only when they changed: its mtime moves exactly when the stage must rerun.
# Under `make -n` nothing is written; a changed stamp is marked out of date instead, so the dry
# run shows exactly the commands a real run would.
PARAM_STAGES += prompt prompt-eval
.PHONY: FORCE
FORCE:
dry_run := $(findstring n,$(firstword -$(MAKEFLAGS)))
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
