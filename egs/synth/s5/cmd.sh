# The job runners the recipe uses. On one machine: utils/run.py (Kaldi's run.pl).
# train_cmd: CPU jobs; decode_cmd: decoding; gpu_cmd: the training programs (monophone
# model, teacher LMs, soft labels, acoustic models), which use run.sh's --device.
export train_cmd="utils/run.py"
export decode_cmd="utils/run.py"
export gpu_cmd="utils/run.py"

# On a Slurm cluster, use utils/slurm.py instead (see its --help for the options):
# export train_cmd="utils/slurm.py --partition cpu --mem 4G --time 4:00:00"
# export decode_cmd="utils/slurm.py --partition cpu --mem 8G --time 2:00:00"
# export gpu_cmd="utils/slurm.py --partition gpu --gpu 1 --mem 16G --time 8:00:00"
