# Small make functions used by the pipeline files.

# Quote a make value for the shell.
squote = '$(subst ','\'',$(1))'

# `FLAG 'value'` when variable $(2) is set (on the command line, in the environment or by the
# pipeline file), nothing otherwise: then the stage's own default applies, declared once in its
# --help, never restated here.
opt = $(if $(strip $($(2))),$(1) $(call squote,$(strip $($(2)))))

# A variable's value for `make help`, or where the stage's default applies.
shown = $(or $(strip $($(1))),(stage default))

# Every Parquet file of a DATA path: a folder is no good as a make prerequisite (its mtime does
# not follow its files), so pipelines depend on the files. Images are not tracked.
parquet_files = $(if $(1),$(shell find $(1) -name '*.parquet' 2>/dev/null | LC_ALL=C sort))

# Stop with a message when a required variable is empty, unless only `help` was asked for.
require = $(if $(strip $($(1))),,$(if $(filter-out help,$(or $(MAKECMDGOALS),help)),$(error PIPELINE=$(PIPELINE) needs $(1)=... ($(2)))))

# `make -B` remakes every target make considers, upstream ones included. Here it reruns just the
# stages named as goals (by artefact path or stage name): under -B the rules of the other
# artefacts are left out, so their files are taken as they are. `make -B runs/demo/candidates.parquet`
# reruns retrieval alone; the next plain `make` reruns what depends on it.
always_make := $(findstring B,$(firstword -$(MAKEFLAGS)))
active = $(if $(always_make),$(if $(filter $(abspath $(1)),$(abspath $(MAKECMDGOALS))),yes),yes)

# Set under `make -n` (a dry run).
dry_run := $(findstring n,$(firstword -$(MAKEFLAGS)))

# A stage writing several files $(FILES) gets one rule, written
#   $(call outputs,$(FILES)) $(GROUPED) prerequisites...
#   <TAB>recipe
#   $(eval $(call followers,$(FILES)))
# Normally that is a grouped rule (`FILES &: ...`): one recipe run makes them all. GNU make 4.3
# does not take a grouped rule's files as remade under `make -n`, so the rules downstream would
# look up to date and the dry run would list too little; there the first file carries the recipe
# and the others follow it, which the dry run does follow.
ifeq ($(dry_run),)
GROUPED := &:
outputs = $(1)
else
GROUPED := :
outputs = $(firstword $(1))
endif
followers = $(if $(dry_run),$(wordlist 2,$(words $(1)),$(1)): $(firstword $(1)) ;)
