#!/usr/bin/env bash
# lm2am recipe on LibriSpeech: distilling language models into a hybrid DNN-HMM acoustic
# model (Lee & Chang, 2021). Stage 1 (local/: data preparation) and the settings (conf/:
# sizes) are LibriSpeech's own; stages 2-10 are shared with every recipe (utils/stages.sh).
# Every program leaves its outputs on disk and is skipped when they were made from the same
# inputs and settings.
#
#   ./run.sh --corpus-dir /data/LibriSpeech --lm-dir /data/librispeech_lm   # train-clean-100, CPU sizes
#   ./run.sh --config conf/gpu.conf --corpus-dir /data/LibriSpeech          # 960 h, GPU sizes
#   ./run.sh --download true                     # fetch corpus, LM corpus, lexicon and ARPAs into download/
#   ./run.sh --lm-source estimate                # decode with n-grams of the LM text instead of openslr's
#   ./run.sh --stage 4 --stop-stage 5            # a slice
# What a full run needs (disk, time, GPUs) and what it makes: README.md.
set -euo pipefail

stage=1
stop_stage=10
nj=2                      # parallel CPU jobs
force=false               # redo every program, even those up to date with their inputs
device=cpu                # device of the training programs (mono, realignment, teachers, soft labels, AMs)
corpus=librispeech
corpus_dir=download/LibriSpeech   # holds train-clean-100/, dev-clean/, ... (lhotse's layout)
lm_dir=download/lm        # librispeech-lm-norm.txt(.gz), librispeech-lexicon.txt, used if there; openslr's ARPAs
download=false            # fetch missing LibriSpeech parts and the LM resources (openslr.org)
lm_source=openslr         # decoding LMs. openslr: LibriSpeech's published ARPAs in lm_dir (resource 11), those
                          # of Kaldi's LibriSpeech figures. estimate: Kneser-Ney n-grams of the LM text (lm_order ..)
openslr_lm=3-gram.pruned.1e-7   # openslr first pass: <lm_dir>/<name>.arpa.gz (Kaldi's tgmed; tgsmall: 3-gram.pruned.3e-7)
openslr_rescore_lm=        # openslr lattice rescoring, e.g. 4-gram (Kaldi's fglarge); empty: none. Off by
                          # default: today's rescorer holds the whole ARPA in memory (README.md)
train_parts="train-clean-100"     # "train-clean-100 train-clean-360 train-other-500": 960 h
extra_parts="dev-other test-other"  # evaluated as dev_other, test_other besides dev, test
check_audio=header        # header: open every file's header; decode: read every file through
lm_fraction=0.02          # share of librispeech-lm-norm's 40 M sentences in the LM text
speed_perturb=false       # add 0.9x and 1.1x copies of the training cuts
num_prons=2               # pronunciations kept per word
extra_lexicon=            # merged over CMUdict if it is there (default: <lm_dir>/librispeech-lexicon.txt)
g2p=none                  # espeak | none: that lexicon already carries G2P pronunciations of the LM vocabulary
bpe_vocab_size=500
lm_order=3                # estimate: decoding n-gram LM (openslr: the ARPA's order)
lm_min_count="3gram:2"    # estimate
lm_prune=1e-7             # estimate: relative-entropy pruning of the decoding LM (as openslr's tgmed)
mono_config=conf/mono.yaml
mono_threads=0            # torch threads of the flat start (0: torch's default, the machine's cores; the model changes with the count)
mono_subset=4000          # shortest training utterances of the flat-start model (0: all)
num_leaves=2000           # senone budget of the decision tree
tree_thresh=300           # minimum log-likelihood gain of a split (Kaldi's build-tree --thresh)
senone_realign=true       # retrain the alignment model on senones and realign (exp/aligner)
realign_config=conf/realign.yaml
realign_threads=0         # torch threads of the realignment (0: torch's default)
levels="senone phone subword"  # unit levels of the teacher LMs
lm_config_suffix=         # teacher LM configs: conf/lm_<level>${lm_config_suffix}.yaml
plm_teacher=              # a local transformers checkpoint dir: adds the plm level and system aux_plm
plm_finetune_epochs=0     # fine-tune that model on the LM text first (exp/lm_plm/model)
plm_finetune_max_lines=0  # lines of LM text it is fine-tuned on (0: all)
plm_kind=auto             # auto | causal | masked
top_k=8                   # soft labels: the teacher's k most likely units ...
temperature=1.0           # ... after dividing its logits by this
systems="baseline li aux_senone aux_phone aux_subword hier"  # acoustic models of stages 8-10
seeds="1 2 3"
aa_seeds=                 # more seeds of the baseline, for the report's A/A check alone (empty: its seeds split in two)
am_config_suffix=         # AM configs: conf/am_<system>${am_config_suffix}.yaml
am_override=              # YAML merged over every AM config (e.g. conf/am_tiny.yaml)
am_nproc=1                # processes per AM training: > 1 runs it under torchrun (DDP)
am_parallel=4             # AM trainings side by side (CPU sizes: ~12 GB of memory each)
am_threads=4              # torch threads of each AM training
decode_opts="--beam 10 --lattice-beam 6 --max-active 7000"  # steps.decode (k2 lattice search), as the synth recipe
rescore_lm_order=0        # estimate: lattice rescoring with an n-gram of this order (0: none; openslr: the ARPA's)
strength_lm_orders=       # LM strengths: first-pass n-gram orders decoded besides lm_order, e.g. "1 2": unpruned
                          # n-grams of the LM text (with lm_source=openslr, not the ARPA's text), exp/graph_<n>gram,
                          # exp/am_*/decode_<part>_<n>gram; empty: none
strength_lm_weights="3 4 5 6 7 8 9 10 11 12 13 14 15 16 17"  # their dev LM-weight sweep (weak LMs want lower weights)

help_message="Usage: $0 [options]
  --stage N --stop-stage M   run stages N..M (default 1..10)
  --config FILE              settings file, e.g. conf/gpu.conf (read first; options win)
  --corpus-dir DIR           the LibriSpeech directory (default $corpus_dir)
  --lm-dir DIR               librispeech-lm-norm.txt.gz, librispeech-lexicon.txt, openslr's ARPAs (default $lm_dir)
  --download true            download what is missing from openslr.org
  --lm-source estimate       decode with n-grams of the LM text, not openslr's ARPAs (default $lm_source)
  --train-parts \"...\"        LibriSpeech training parts (default $train_parts)
  --extra-parts \"...\"        extra evaluation parts (default $extra_parts)
  --nj N                     parallel jobs (default $nj)
  --device cuda              train on a GPU
  --seeds \"1 2 3\"            training seeds of every system
  --strength-lm-orders \"1 2\" first-pass LM orders decoded besides lm_order (default none)
  --force true               redo every program, even those up to date with their inputs
Stages: 1 data, 2 features, 3 lang, 4 monophone alignment, 5 tree and senone alignment,
        6 teacher LMs, 7 soft labels, 8 acoustic models, 9 decoding, 10 report"

. ./cmd.sh
. ./path.sh
. utils/log.sh
run_options="${*@Q}"  # recorded in RESULTS.md, quoted as typed
. utils/parse_options.sh
# The recipe's parts: train, dev (dev-clean), test (test-clean) and the extra ones.
eval_parts="dev test"
for part in $extra_parts; do eval_parts="$eval_parts ${part//-/_}"; done
parts="train $eval_parts"
extra_lexicon=${extra_lexicon:-$lm_dir/librispeech-lexicon.txt}
# The decoding LMs: utils/stages.sh installs lm_arpa (stage 3: G) and rescore_arpa (stage 9)
# when they are set, and estimates n-grams of the LM text when they are not.
lm_arpa= rescore_arpa=
case $lm_source in
  openslr)
    lm_arpa=$lm_dir/$openslr_lm.arpa.gz
    lm_order=${openslr_lm%%-gram*}  # openslr's names start with the order
    rescore_lm_order=0
    if [ -n "$openslr_rescore_lm" ]; then
      rescore_arpa=$lm_dir/$openslr_rescore_lm.arpa.gz
      rescore_lm_order=${openslr_rescore_lm%%-gram*}
    fi
    if ! [[ $lm_order =~ ^[0-9]+$ && $rescore_lm_order =~ ^[0-9]+$ ]]; then
      echo "$0: --openslr-lm and --openslr-rescore-lm are openslr's names (3-gram.pruned.1e-7, 4-gram, ...)," \
           "not '$openslr_lm' and '$openslr_rescore_lm'" >&2
      exit 1
    fi ;;
  estimate) ;;
  *) echo "$0: --lm-source is openslr or estimate, not '$lm_source'" >&2; exit 1 ;;
esac
. utils/stages.sh

# One run at a time in this directory: a second one says who runs (pid, host, command,
# since when) and stops; the lock of a run that was killed is taken over.
utils/lock.py acquire . --pid $$ --command "$0 $run_options"
trap 'utils/lock.py release . --pid $$' EXIT

lm_norm=$lm_dir/librispeech-lm-norm.txt.gz
[ -f $lm_dir/librispeech-lm-norm.txt ] && lm_norm=$lm_dir/librispeech-lm-norm.txt

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: LibriSpeech ($train_parts; dev-clean test-clean $extra_parts) -> data/manifests;" \
      "LM text -> data/text/lm_text.txt"
  download_opt=()
  if $download; then
    download_opt=(--download)
    python -m local.librispeech.download_lm --out-dir $lm_dir --files librispeech-lm-norm.txt.gz \
      librispeech-lexicon.txt ${lm_arpa:+${lm_arpa##*/}} ${rescore_arpa:+${rescore_arpa##*/}}
  fi
  for arpa in $lm_arpa $rescore_arpa; do
    if [ ! -f $arpa ]; then
      log "lm_source=openslr: no $arpa. Fetch openslr's LMs with --download true (openslr.org" \
          "resource 11, into --lm-dir), put them in --lm-dir, or decode with --lm-source estimate"
      exit 1
    fi
  done
  python -m local.librispeech --corpus-dir $corpus_dir --out-dir data/manifests \
    --train-parts $train_parts --extra-parts $extra_parts --check-audio $check_audio --nj $nj \
    "${download_opt[@]}" "${force_opt[@]}"
  python -m local.librispeech.lm_text --lm-norm $lm_norm --manifest-dir data/manifests --out-dir data/text \
    --fraction $lm_fraction "${force_opt[@]}"
fi

# Stages 2-10 are every corpus' (utils/stages.sh): the same programs and folders.
run_stage 2 features      # data/fbank
run_stage 3 lang          # data/lang, data/lang_bpe_$bpe_vocab_size, data/lang_test
run_stage 4 mono          # exp/mono, exp/mono_ali
run_stage 5 tree          # exp/tree, exp/senone_conv, exp/aligner, exp/senone_ali
run_stage 6 teachers      # exp/lm_<level>
run_stage 7 soft_labels   # data/kd
run_stage 8 train         # exp/am_<system>_s<seed>
run_stage 9 decode        # exp/graph, exp/am_<system>_s<seed>/decode_<part>
run_stage 10 report       # RESULTS.md
