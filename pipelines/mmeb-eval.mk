# Real MMEB-eval (TIGER-Lab/MMEB-eval, split `test`, 36 subsets), e.g.
#   make PIPELINE=mmeb-eval RUN=eval2b EVAL_DATA=/data/MMEB-eval IMAGE_ROOT=/data/MMEB-eval/images \
#        MODEL=/models/Qwen2-VL-2B-Instruct prompt-eval

EVAL_SPLIT ?= test
IMAGE_ROOT ?= $(EVAL_DATA)
$(call require,EVAL_DATA,an MMEB-eval file or folder)
