#!/usr/bin/env bash
# The long adv_disentangle bench run behind benchmarks/RESULTS.md's best expression transfer
# (0.895 at 27,000 steps; sessions 16-17), replayed from step 0 in one run directory. Each stage
# resumes the previous one's checkpoint with one change (the RESULTS session that measured it
# in brackets):
#   0-16,000       the demo flagfile plus generator weight averaging (ema_momentum=0.999) and
#                  batch-norm re-estimation for the averaged weights (sessions 10-13)
#   16,000-22,000  50,000 training faces instead of 10,000: the classifiers had memorised them (session 15)
#   22,000-27,000  Eq. 6's weight lambda_cls_syn 3 -> 10 (session 16)
# The measured run went through these stages across several sessions, resumed many times and
# beside other jobs, so a replay matches it up to run-to-run noise (about +-1 point per attribute
# at these 1,300-1,700 evaluation pairs), not bit for bit. ~4.5 hours alone on 2 CPU cores.
#
#   bash benchmarks/adv_disentangle_long.sh RUN_DIR [CACHE_DIR]
set -euo pipefail
RUN=${1:?usage: bash benchmarks/adv_disentangle_long.sh RUN_DIR [CACHE_DIR]}
CACHE=${2:-/tmp/cache_advdis}
H=enc_width=8,dec_width=64,num_res_blocks=2,dec_resize_stride2=false,c_width=16,d_width=16,d_max_width=256,lr_g=3e-4,lr_d=3e-4,lr_c=3e-4,norm=batch,lambda_adv=0.1,lambda_c_fake=1,lambda_cls_syn=3,ema_momentum=0.999
COMMON=(--run_dir="$RUN" --checkpoint_every=1000 --keep_checkpoints=30 --noprogress)

train() { python -m tfattr.train "$@" "${COMMON[@]}"; }
if [[ ! -f "$RUN/flags.txt" ]]; then
  train --flagfile=experiments/adv_disentangle_bench64_demo.flags --hparams="$H" --batch_norm_batches=200 \
    --dataset_options=cache_dir="$CACHE",num_train=10000 --steps=16000
else
  train --flagfile="$RUN/flags.txt" --resume --steps=16000
fi
train --flagfile="$RUN/flags.txt" --resume --steps=22000 --dataset_options=cache_dir="$CACHE",num_train=50000
train --flagfile="$RUN/flags.txt" --resume --steps=27000 --hparams="${H/lambda_cls_syn=3/lambda_cls_syn=10}"
python -m tfattr.evaluate --run_dir="$RUN" --checkpoint="$RUN/checkpoints/ckpt-27000" \
  --metrics=oracle_acc_swap_2k,oracle_pres_swap_2k,cf_l1_swap_2k
