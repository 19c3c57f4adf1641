# Real MMEB-train (TIGER-Lab/MMEB-train as downloaded: one sub-folder per subset), e.g.
#   make PIPELINE=mmeb-train RUN=mmeb2b DATA=/data/MMEB-train IMAGE_ROOT=/data/MMEB-train/images \
#        MODEL=/models/Qwen2-VL-2B-Instruct SUBSETS=VisDial,CIRR prompt
# The reference samples from the `diverse_instruction` split and keeps duplicate rows.

SPLIT ?= diverse_instruction
IMAGE_ROOT ?= $(DATA)
$(call require,DATA,an MMEB-train file or folder)
