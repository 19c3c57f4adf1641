# Real MMEB-eval (TIGER-Lab/MMEB-eval, split `test`, 36 subsets), e.g.
#   make PIPELINE=mmeb-eval RUN=eval2b EVAL_DATA=/data/MMEB-eval IMAGE_ROOT=/data/MMEB-eval/images \
#        MODEL=/models/Qwen2-VL-2B-Instruct prompt-eval
# `eval` instead of `prompt-eval` also embeds and scores (eval/eval_scores.parquet, eval_report.md);
# add EVAL_COMPARE=runs/<other>/eval/eval_scores.parquet for before/after deltas.

EVAL_SPLIT ?= test
IMAGE_ROOT ?= $(EVAL_DATA)
$(call require,EVAL_DATA,an MMEB-eval file or folder)
