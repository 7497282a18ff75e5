# The job runners the recipe uses (Kaldi's cmd.sh). train_cmd: CPU jobs (features,
# alignment, tree statistics); decode_cmd: decoding; gpu_cmd: the training programs
# (monophone model, teacher LMs, soft labels, acoustic models), which use --device.
#
# On one machine: utils/run.py (Kaldi's run.pl); it accepts and ignores the Slurm
# resource options, so the recipe runs unchanged.
export train_cmd="utils/run.py"
export decode_cmd="utils/run.py"
export gpu_cmd="utils/run.py"

# On a Slurm cluster: utils/slurm.py (same interface; see its --help). With
# run.sh --device cuda, give the training jobs a GPU each (or am_nproc GPUs, below):
# export train_cmd="utils/slurm.py --partition cpu --mem 4G --time 4:00:00"
# export decode_cmd="utils/slurm.py --partition cpu --mem 16G --time 8:00:00"
# export gpu_cmd="utils/slurm.py --partition gpu --gpu 1 --num-threads 8 --mem 64G --time 48:00:00"

# Multi-GPU acoustic-model training. steps.train_am reads torchrun's environment
# (WORLD_SIZE, RANK, LOCAL_RANK; init_world in steps/train_am.py): under torchrun it is
# DDP, nccl on GPUs and gloo on CPU, one sampler shard per process, gradients the same as
# one process on the global batch. run.sh --am-nproc N starts every AM training as
#   torchrun --nnodes 1 --nproc_per_node N --master_port <29500 + run number> -m steps.train_am ...
# through gpu_cmd (one port per run, so runs that share a node do not collide), e.g.
#   ./run.sh --config conf/gpu.conf --am-nproc 4 --am-parallel 1     # 4 GPUs, one run at a time
# and on Slurm each AM job then needs its N GPUs:
# export gpu_cmd="utils/slurm.py --partition gpu --gpu 4 --num-threads 32 --mem 200G --time 72:00:00"
# By hand, the same for one system:
#   torchrun --nnodes 1 --nproc_per_node 4 -m steps.train_am --config conf/am_hier_gpu.yaml \
#     --cuts data/kd/librispeech_cuts_train.jsonl.gz --dev-cuts data/kd/librispeech_cuts_dev.jsonl.gz \
#     --exp-dir exp/am_hier_s1 --seed 1 --device cuda
