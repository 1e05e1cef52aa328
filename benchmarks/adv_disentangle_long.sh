#!/usr/bin/env bash
# The long adv_disentangle bench run behind benchmarks/RESULTS.md's expression transfer over 0.9
# (sessions 18-20), replayed from step 0 in one run directory. Each stage resumes the previous one's
# checkpoint with one change:
#   0-4,000        the demo flagfile (learning rates 1e-3, 10,000 training faces; session 18)
#   4,000-14,000   50,000 training faces (the classifiers memorise 10,000; session 15) and Eq. 6's
#                  weight lambda_cls_syn 3 -> 10 (session 16), constant rates
# then evaluates the mean weights of the checkpoints at 11,000-14,000 (--average_checkpoints; session
# 20): single checkpoints swing between 0.85 and 0.91 in expression; their average is at 0.90-0.91.
# Session 20 replay: 80 min on 2 CPU cores (AMD EPYC) shared with short jobs, expression / illumination /
# gaze 0.911 / 0.966 / 0.966 (RESULTS.md).
#
#   bash benchmarks/adv_disentangle_long.sh RUN_DIR [CACHE_DIR]
set -euo pipefail
RUN=${1:?usage: bash benchmarks/adv_disentangle_long.sh RUN_DIR [CACHE_DIR]}
CACHE=${2:-/tmp/cache_advdis}
COMMON=(--run_dir="$RUN" --checkpoint_every=1000 --keep_checkpoints=30 --noprogress)

train() { python -m tfattr.train "$@" "${COMMON[@]}"; }
if [[ ! -f "$RUN/flags.txt" ]]; then
  train --flagfile=experiments/adv_disentangle_bench64_demo.flags --dataset_options=cache_dir="$CACHE",num_train=10000 --steps=4000
else
  train --flagfile="$RUN/flags.txt" --resume --steps=4000
fi
H=$(grep '^--hparams=' "$RUN/flags.txt" | cut -d= -f2- | sed 's/lambda_cls_syn=3/lambda_cls_syn=10/')
train --flagfile="$RUN/flags.txt" --resume --steps=14000 --dataset_options=cache_dir="$CACHE",num_train=50000 --hparams="$H"
python -m tfattr.evaluate --run_dir="$RUN" --average_checkpoints=11000,12000,13000,14000 \
  --metrics=oracle_acc_swap_2k,oracle_pres_swap_2k,cf_l1_swap_2k
python -m tfattr.export --run_dir="$RUN" --average_checkpoints=11000,12000,13000,14000
