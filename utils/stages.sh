# Stages 2-10 of every recipe (features .. report), written once so that recipes cannot
# drift. A recipe's run.sh sets its settings, runs its own stage 1 (corpus preparation into
# data/manifests and data/text/lm_text.txt), then calls
#   run_stage 2 features; run_stage 3 lang; ...; run_stage 10 report
# Each stage runs only inside --stage/--stop-stage. Every program is passed --force when
# run.sh has force=true and otherwise decides by its own input fingerprint
# (steps/core/atomic.py), so a changed setting redoes that program and what depends on it.
#
# Directories are the same in every recipe (Kaldi's data/ and exp/ layout); each one
# carries what the next step needs (exp/mono_ali, exp/tree and exp/senone_ali hold topology
# and tree), so the programs are given folders, not the same files over and over.
#
# Settings read (run.sh defines every one, at its top):
#   corpus parts eval_parts nj force device         where and how much
#   train_cmd decode_cmd gpu_cmd                    job runners (cmd.sh)
#   speed_perturb                                   stage 2
#   num_prons extra_lexicon g2p bpe_vocab_size lm_order lm_min_count lm_prune   stage 3
#   lm_arpa (optional: a prebuilt ARPA of order lm_order, installed as G instead of
#     estimating one; its words join the vocabulary where the lexicon has them, or where
#     g2p makes a pronunciation: set g2p=none unless the lexicon lacks a few of them)  stage 3
#   mono_config mono_subset mono_threads            stage 4
#   num_leaves tree_thresh senone_realign realign_config realign_threads   stage 5
#   levels lm_config_suffix plm_teacher plm_kind plm_finetune_epochs plm_finetune_max_lines
#                                                   stage 6
#   top_k temperature                               stage 7
#   systems seeds aa_seeds am_config_suffix am_override am_nproc am_parallel am_threads   stage 8
#                                                   (aa_seeds, optional: more seeds of the first
#                                                   system, the baseline, for the A/A check)
#   decode_opts rescore_lm_order                    stage 9
#   strength_lm_orders strength_lm_weights          stage 9: first-pass LMs of other orders (and stage 10:
#                                                   their perplexity); strength_orders says what they are
#   rescore_arpa (optional: a prebuilt ARPA of order rescore_lm_order for rescoring,
#     instead of estimating one)                    stage 9
#   run_options parse_options_configs               stage 10 (RESULTS.md says how it ran)

. "$(dirname "${BASH_SOURCE[0]}")/exp_dirs.sh"  # beside this file, wherever the recipe runs
. "$(dirname "${BASH_SOURCE[0]}")/job_line.sh"
force_opt=()
if $force; then force_opt=(--force); fi
gpu_cmd=${gpu_cmd:-$train_cmd}  # a cmd.sh without a GPU queue: the training programs are CPU jobs
bpe_model=data/lang_bpe_$bpe_vocab_size/bpe.model
teacher_dirs=
for level in $levels; do teacher_dirs="$teacher_dirs exp/lm_$level"; done
if [ -n "$plm_teacher" ]; then
  teacher_dirs="$teacher_dirs exp/lm_plm"
  case " $systems " in *" aux_plm "*) ;; *) systems="$systems aux_plm" ;; esac
fi

# run_stage N NAME: stage_NAME if N is within --stage .. --stop-stage.
run_stage() {
  if [ $stage -le $1 ] && [ $stop_stage -ge $1 ]; then stage_$2; fi
}

stage_titles=([1]="data" [2]="features" [3]="lang" [4]="monophone alignment" [5]="tree"
              [6]="teacher LMs" [7]="soft labels" [8]="acoustic models" [9]="decoding")

# need_inputs N FILE:M ...: stage N reads FILE, which stage M makes. Every missing one is
# named with its stage, and the run stops before stage N starts anything (Kaldi's
# `for f in ...; do [ ! -f $f ] && echo "no such file $f"` preamble), so that a stage run
# out of order says what to run rather than failing inside a program or a redirection.
need_inputs() {
  local this=$1 entry file maker first=
  shift
  for entry in "$@"; do
    file=${entry%:*} maker=${entry##*:}
    if [ ! -e "$file" ]; then
      log "Stage $this (${stage_titles[$this]}): no such file $file; stage $maker (${stage_titles[$maker]}) makes it"
      if [ -z "$first" ] || [ $maker -lt $first ]; then first=$maker; fi
    fi
  done
  if [ -n "$first" ]; then
    log "Stage $this cannot run before stage $first: run ./run.sh --stage $first (with the same options)"
    exit 1
  fi
}

# require_dev N: stages 7 and 9 read the dev part (the heads' held-out KL; the LM weight that
# test is decoded with), which a corpus without one cannot give.
require_dev() {
  case " $eval_parts " in
    *" dev "*) ;;
    *) log "Stage $1 (${stage_titles[$1]}) reads the dev part, but eval_parts (\"$eval_parts\") has no dev:" \
           "add dev to eval_parts, and have the corpus' stage 1 write its manifests"
       exit 1 ;;
  esac
}

# system_seeds SYSTEM: the seeds SYSTEM is trained and decoded with: every system's, and for
# the baseline (the first system) also the A/A check's (aa_seeds), which the report keeps apart.
system_seeds() {
  local first=${systems%% *}
  if [ "$1" = "$first" ]; then echo $seeds ${aa_seeds:-}; else echo $seeds; fi
}

stage_features() {
  log "Stage 2: fbank features -> data/fbank/${corpus}_cuts_{${parts// /,}}.jsonl.gz"
  local sp_opt=() part inputs=()
  for part in $parts; do
    inputs+=(data/manifests/${corpus}_recordings_$part.jsonl.gz:1 data/manifests/${corpus}_supervisions_$part.jsonl.gz:1)
  done
  need_inputs 2 "${inputs[@]}"
  if $speed_perturb; then sp_opt=(--speed-perturb); fi
  python -m steps.compute_fbank --manifest-dir data/manifests --corpus $corpus --parts $parts \
    --out-dir data/fbank --nj $nj --cmd "$train_cmd" "${sp_opt[@]}" "${force_opt[@]}"
}

stage_lang() {
  log "Stage 3: lexicon and lang -> data/lang; sentencepiece -> data/lang_bpe_$bpe_vocab_size;" \
      "${lm_order}-gram G${lm_arpa:+ from $lm_arpa} -> data/lang_test"
  local lexicon_opt=() prune_opt=() part inputs=(data/text/lm_text.txt:1) vocab_text=data/text/lm_text.txt
  for part in $parts; do inputs+=(data/manifests/${corpus}_supervisions_$part.jsonl.gz:1); done
  if [ -n "${lm_arpa:-}" ]; then inputs+=("$lm_arpa:1"); fi
  need_inputs 3 "${inputs[@]}"
  if [ -n "$extra_lexicon" ]; then
    if [ -f $extra_lexicon ]; then
      lexicon_opt=(--extra-lexicon $extra_lexicon)
      log "lexicon: CMUdict plus $extra_lexicon"
    else
      log "lexicon: CMUdict only (no $extra_lexicon)"
    fi
  fi
  if [ -n "$lm_prune" ]; then prune_opt=(--prune $lm_prune); fi
  if [ -n "${lm_arpa:-}" ]; then
    # The prebuilt LM's words join the vocabulary (where the lexicon has them): the
    # vocabulary comes from the LM text's lines followed by the ARPA's words.
    python -m steps.make_lm --arpa "$lm_arpa" --text data/text/lm_text.txt --vocab-text \
      --out-dir data/local/lm_vocab "${force_opt[@]}"
    vocab_text=data/local/lm_vocab/vocab_text.txt
  fi
  python -m steps.prepare_lang --manifest-dir data/manifests --corpus $corpus --parts $parts \
    --lm-text $vocab_text --lang-dir data/lang --num-prons $num_prons --g2p ${g2p:-espeak} \
    "${lexicon_opt[@]}" "${force_opt[@]}"
  python -m steps.train_bpe --lm-text data/text/lm_text.txt --lang-dir data/lang_bpe_$bpe_vocab_size \
    --vocab-size $bpe_vocab_size "${force_opt[@]}"
  if [ -n "${lm_arpa:-}" ]; then
    # G from the prebuilt ARPA, less the n-grams of words without a pronunciation (counted).
    python -m steps.make_lm --arpa "$lm_arpa" --lang-dir data/lang --order $lm_order \
      --out-dir data/lang_test "${force_opt[@]}"
  else
    python -m steps.make_lm --text data/text/lm_text.txt --lang-dir data/lang --order $lm_order \
      --min-count $lm_min_count "${prune_opt[@]}" --out-dir data/lang_test "${force_opt[@]}"
  fi
}

stage_mono() {
  log "Stage 4: flat-start monophone alignment model -> exp/mono; alignments -> exp/mono_ali"
  local mono_cuts=data/fbank/${corpus}_cuts_train.jsonl.gz part threads_opt=()
  local inputs=(data/lang/phones.txt:3 data/lang/words.txt:3 data/lang/lexicon.txt:3)
  for part in $parts; do inputs+=(data/fbank/${corpus}_cuts_$part.jsonl.gz:2); done
  need_inputs 4 "${inputs[@]}"
  if [ $mono_subset -gt 0 ]; then
    # Kaldi's LibriSpeech recipe starts from the shortest utterances too.
    python -m steps.subset_cuts --cuts $mono_cuts --num $mono_subset \
      --out data/fbank/${corpus}_cuts_train_${mono_subset}short.jsonl.gz "${force_opt[@]}"
    mono_cuts=data/fbank/${corpus}_cuts_train_${mono_subset}short.jsonl.gz
  fi
  # A fixed thread count: torch's default is the machine's core count, and the model (so the
  # tree and everything after it) changes with the number of threads (README.md, Reproducibility).
  if [ ${mono_threads:-0} -gt 0 ]; then threads_opt=(--num-threads $mono_threads); fi
  $gpu_cmd "${threads_opt[@]}" exp/mono/log/train_mono.job.log \
    python -m steps.train_mono --config $mono_config --cuts $mono_cuts --lang-dir data/lang \
      --exp-dir exp/mono --device $device --num-threads ${mono_threads:-0} "${force_opt[@]}"
  # exp/mono_ali gets copies of the model and its topology (Kaldi's align_si.sh).
  for part in $parts; do
    python -m steps.align --model exp/mono/final.pt --cuts data/fbank/${corpus}_cuts_$part.jsonl.gz \
      --lang-dir data/lang --part $part --out-dir exp/mono_ali --nj $nj --cmd "$train_cmd" "${force_opt[@]}"
  done
  # Word-boundary accuracy where the corpus came with reference boundaries (none: "nothing scored").
  for part in $eval_parts; do
    python -m steps.score_alignment --cuts exp/mono_ali/cuts_$part.jsonl.gz \
      --out exp/mono_ali/quality_$part.json
  done
}

stage_tree() {
  log "Stage 5: decision tree -> exp/tree; senone alignments -> exp/senone_ali (realigned by exp/aligner)"
  local conv_dir=exp/senone_ali part
  local inputs=(data/lang/phones.txt:3 exp/mono/final.pt:4)
  for part in $parts; do inputs+=(exp/mono_ali/cuts_$part.jsonl.gz:4); done
  need_inputs 5 "${inputs[@]}"
  python -m steps.acc_tree_stats --cuts exp/mono_ali/cuts_train.jsonl.gz --lang-dir data/lang \
    --out-dir exp/tree --nj $nj --cmd "$train_cmd" "${force_opt[@]}"
  python -m steps.build_tree --stats-dir exp/tree --lang-dir data/lang --num-leaves $num_leaves \
    --thresh $tree_thresh --out-dir exp/tree "${force_opt[@]}"
  # With senone_realign the converted alignments are an intermediate (exp/senone_conv): the
  # alignment model is retrained on senones (exp/aligner) and realigns every part into exp/senone_ali.
  if $senone_realign; then conv_dir=exp/senone_conv; fi
  for part in $parts; do
    python -m steps.convert_ali --cuts exp/mono_ali/cuts_$part.jsonl.gz --tree exp/tree \
      --lang-dir data/lang --out-dir $conv_dir --nj $nj --cmd "$train_cmd" "${force_opt[@]}"
  done
  if $senone_realign; then
    python -m steps.realign_senones --config $realign_config --cuts-dir exp/senone_conv --parts $parts \
      --init-model exp/mono/final.pt --lang-dir data/lang --model-dir exp/aligner --out-dir exp/senone_ali \
      --device $device --num-threads $realign_threads "${force_opt[@]}"
  fi
}

stage_teachers() {
  log "Stage 6: teacher LMs on ${levels// /, } -> exp/lm_{${levels// /,}}"
  local level num_levels
  need_inputs 6 data/text/lm_text.txt:1 data/lang/phones.txt:3 $bpe_model:3 \
    exp/mono_ali/pron_counts_train.txt:4 exp/tree/tree.txt:5
  for level in $levels; do
    python -m steps.lm_tokens --level $level --lm-text data/text/lm_text.txt --lang-dir data/lang \
      --tree exp/tree --bpe-model $bpe_model --pron-counts exp/mono_ali/pron_counts_train.txt \
      --out-dir exp/lm_$level "${force_opt[@]}"
  done
  # Small models: one thread each, side by side.
  for level in $levels; do
    job_line python -m steps.train_lm --level $level --config conf/lm_$level$lm_config_suffix.yaml \
      --data-dir exp/lm_$level --exp-dir exp/lm_$level --device $device --num-threads 1 --resume "${force_opt[@]}"
  done > exp/lm_jobs.txt
  num_levels=$(wc -l < exp/lm_jobs.txt)
  $gpu_cmd --max-jobs-run $num_levels JOB=1:$num_levels exp/log/train_lm.JOB.log \
    utils/run_line.sh exp/lm_jobs.txt JOB
  for level in $levels; do log "$level: $(grep -E "^(teacher|bigram)_ppl" exp/lm_$level/ppl | tr "\n" " ")"; done
  if [ -n "$plm_teacher" ]; then
    log "plm teacher from $plm_teacher -> exp/lm_plm (its pieces are the plm units)"
    python -m steps.prepare_plm_teacher --model "$plm_teacher" --kind $plm_kind \
      --lm-text data/text/lm_text.txt --words data/lang/words.txt --out-dir exp/lm_plm \
      --finetune-epochs $plm_finetune_epochs --finetune-max-lines $plm_finetune_max_lines \
      --num-threads 1 "${force_opt[@]}"
    log "plm: $(grep -E "^teacher_ppl" exp/lm_plm/ppl | tr "\n" " ")"
  fi
}

stage_soft_labels() {
  # The tree (and topology) that give the alignments' senone ids their meaning: the copies in exp/senone_ali.
  # dev too: the AMs' distillation heads report a held-out KL and accuracy on it.
  log "Stage 7: teacher soft labels of the training and dev cuts -> data/kd/${corpus}_cuts_{train,dev}.jsonl.gz"
  require_dev 7
  local ali part dir
  ali=$(senone_ali_dir)
  local inputs=(data/lang/phones.txt:3 $bpe_model:3 $ali/tree.txt:5)
  for part in train dev; do inputs+=($ali/cuts_$part.jsonl.gz:5); done
  for dir in $teacher_dirs; do
    if [ $dir = exp/lm_plm ]; then inputs+=($dir/teacher.json:6); else inputs+=($dir/final.pt:6); fi
  done
  need_inputs 7 "${inputs[@]}"
  for part in train dev; do
    python -m steps.dump_soft_labels --cuts $ali/cuts_$part.jsonl.gz --part $part \
      --lang-dir data/lang --tree $ali/tree.txt --bpe-model $bpe_model --teachers $teacher_dirs \
      --top-k $top_k --temperature $temperature --out-dir data/kd --corpus $corpus --device $device \
      --nj $nj --cmd "$gpu_cmd" "${force_opt[@]}"
  done
}

stage_train() {
  log "Stage 8: acoustic models ($systems) x seeds ($seeds${aa_seeds:+; A/A seeds of ${systems%% *}: $aa_seeds}) -> exp/am_<system>_s<seed>"
  local run_index=0 system seed num_runs ali launcher=() override_opt=()
  if [ -n "$am_override" ]; then override_opt=(--override "$am_override"); fi
  ali=$(senone_ali_dir)
  need_inputs 8 data/kd/${corpus}_cuts_train.jsonl.gz:7 data/kd/${corpus}_cuts_dev.jsonl.gz:7 \
    $ali/senone_counts.txt:5
  mkdir -p exp  # the job list's folder, when exp/ was removed to retrain
  for system in $systems; do
    for seed in $(system_seeds $system); do
      run_index=$((run_index + 1))
      launcher=(python)
      if [ $am_nproc -gt 1 ]; then
        # DDP (steps/train_am.py init_world): one rendezvous port per run, so that runs
        # sharing a node do not collide. Underscore options: torch 1.13 and 2.x.
        launcher=(torchrun --nnodes 1 --nproc_per_node $am_nproc --master_port $((29500 + run_index)))
      fi
      job_line "${launcher[@]}" -m steps.train_am --config conf/am_$system$am_config_suffix.yaml \
        "${override_opt[@]}" --cuts data/kd/${corpus}_cuts_train.jsonl.gz \
        --dev-cuts data/kd/${corpus}_cuts_dev.jsonl.gz --senone-counts $ali/senone_counts.txt \
        --exp-dir exp/am_${system}_s$seed --seed $seed --device $device --num-threads $am_threads \
        --resume "${force_opt[@]}"
    done
  done > exp/am_jobs.txt
  num_runs=$(wc -l < exp/am_jobs.txt)
  $gpu_cmd --max-jobs-run $am_parallel --num-threads $am_threads JOB=1:$num_runs exp/log/train_am.JOB.log \
    utils/run_line.sh exp/am_jobs.txt JOB
}

# strength_orders: sets `strengths`, the orders of strength_lm_orders decoded besides the main
# pass: n-grams of the LM text (unpruned: a cut-off or pruning would weaken them beyond their
# order), each with its graph exp/graph_<n>gram and decodes decode_<part>_<n>gram. They answer
# whether a gain holds as the decoder's LM gets stronger. lm_order itself is the main pass.
strength_orders() {
  local n
  strengths=
  for n in ${strength_lm_orders:-}; do
    if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
      log "strength_lm_orders (\"$strength_lm_orders\"): '$n' is not an n-gram order (1, 2, ...)"
      exit 1
    fi
  done
  [ -n "${strength_lm_orders// /}" ] || return 0
  if [ -n "${lm_arpa:-}" ]; then
    if [ ! -f data/text/lm_text.txt ]; then
      log "LM strengths ($strength_lm_orders) left out: they are n-grams of the LM text" \
          "data/text/lm_text.txt, which is not there (the main pass decodes with $lm_arpa)"
      return 0
    fi
    log "LM strengths: n-grams of data/text/lm_text.txt, while the main pass decodes with $lm_arpa" \
        "(another text: the order is not their only difference)"
  fi
  for n in $(printf '%s\n' $strength_lm_orders | sort -n -u); do
    if [ $n -eq $lm_order ]; then
      log "LM strength $n left out: lm_order is $n, the main pass (decode_<part>)"
    else
      strengths="$strengths $n"
    fi
  done
  strengths=${strengths# }
}

# decode_line DIR GRAPH PART SUFFIX OPTION...: the steps.decode job line of model DIR on PART
# with GRAPH into DIR/decode_<PART><SUFFIX>.
decode_line() {
  job_line python -m steps.decode --model $1/final.pt --graph $2 --cuts data/fbank/${corpus}_cuts_$3.jsonl.gz \
    --lang-dir data/lang --out-dir $1/decode_$3$4 --num-threads 1 "${@:5}"
}

# run_jobs NAME: runs exp/NAME_jobs.txt, one job a line, $nj at a time, logs in exp/log/NAME.JOB.log.
run_jobs() {
  local num_runs
  num_runs=$(wc -l < exp/$1_jobs.txt)
  $decode_cmd --max-jobs-run $nj JOB=1:$num_runs exp/log/$1.JOB.log utils/run_line.sh exp/$1_jobs.txt JOB
}

# strength_graphs: the G (data/lang_test_<n>gram) and graph (exp/graph_<n>gram) of each strength,
# built once before the decoding jobs, which read them side by side.
strength_graphs() {
  local n
  for n in $strengths; do
    python -m steps.make_lm --text data/text/lm_text.txt --lang-dir data/lang --order $n \
      --out-dir data/lang_test_${n}gram "${force_opt[@]}"
    python -m steps.mkgraph --lang-dir data/lang --lm-dir data/lang_test_${n}gram --tree exp/tree \
      --out-dir exp/graph_${n}gram "${force_opt[@]}"
  done
}

# decode_graphs: HCLG of the main pass and of each LM strength, and the rescoring LM; sets
# rescore_args (steps.decode's rescoring options; none without rescoring).
decode_graphs() {
  python -m steps.mkgraph --lang-dir data/lang --lm-dir data/lang_test --tree exp/tree \
    --out-dir exp/graph "${force_opt[@]}"
  if [ -n "$strengths" ]; then
    log "LM strengths: ${strengths// /-, }-gram first passes besides the ${lm_order}-gram ->" \
        "exp/graph_<n>gram, exp/am_*/decode_<part>_<n>gram (dev LM weights: $strength_lm_weights)"
    strength_graphs
  fi
  rescore_args=()
  [ "$rescore_lm_order" -gt 0 ] || return 0
  if [ -n "${rescore_arpa:-}" ]; then
    # A prebuilt rescoring LM, restricted to the vocabulary; no G (nothing reads one).
    python -m steps.make_lm --arpa "$rescore_arpa" --lang-dir data/lang --order $rescore_lm_order \
      --out-dir data/lang_rescore --no-g "${force_opt[@]}"
  else
    # The bigger LM of the rescoring pass: the same text, higher order, no count cut-off.
    python -m steps.make_lm --text data/text/lm_text.txt --lang-dir data/lang --order $rescore_lm_order \
      --out-dir data/lang_rescore "${force_opt[@]}"
  fi
  rescore_args=(--rescore-lm data/lang_rescore/lm_${rescore_lm_order}gram.arpa
                --graph-lm data/lang_test/lm_${lm_order}gram.arpa)
}

# pass_options SUFFIX PART: the decoding options of a pass (SUFFIX: "" the main one, _<n>gram a
# strength) on PART (dev: with the LM-weight sweep), into pass_args.
pass_options() {
  local decode_args
  read -r -a decode_args <<< "$decode_opts"  # a knob of several options
  if [ -z "$1" ]; then
    pass_args=("${decode_args[@]}" "${rescore_args[@]}" "${force_opt[@]}")
  elif [ "$2" = dev ]; then
    pass_args=(--lm-weights "$strength_lm_weights" --no-search-errors "${decode_args[@]}" "${force_opt[@]}")
  else
    pass_args=("${decode_args[@]}" "${force_opt[@]}")
  fi
}

stage_decode() {
  log "Stage 9: decoding graph -> exp/graph; decoding dev (LM-weight sweep), one LM weight per system" \
      "-> exp/lm_weights, and${eval_parts#dev} at it -> exp/am_*/decode_*"
  require_dev 9
  strength_orders
  local system seed part n pass suffix graph dev_dirs passes=() rescore_args=() pass_args=()
  local inputs=(data/lang/phones.txt:3 data/lang_test/G.fst.txt:3 exp/tree/tree.txt:5)
  if [ "$rescore_lm_order" -gt 0 ]; then inputs+=("${rescore_arpa:-data/text/lm_text.txt}:1"); fi
  if [ -n "$strengths" ]; then inputs+=(data/text/lm_text.txt:1 data/lang/words.txt:3); fi
  for part in $eval_parts; do inputs+=(data/fbank/${corpus}_cuts_$part.jsonl.gz:2); done
  for system in $systems; do
    for seed in $(system_seeds $system); do inputs+=(exp/am_${system}_s$seed/final.pt:8); done
  done
  need_inputs 9 "${inputs[@]}"
  decode_graphs
  # Three rounds: dev with an LM-weight sweep, every model at every strength (the weakest
  # LM's jobs, the longest, first); one LM weight per system and strength, chosen on all its
  # seeds' dev decodes (steps.choose_lm_weight; the A/A seeds take the baseline's); the other
  # parts at that weight. The strengths are not rescored.
  for n in $strengths; do passes+=("_${n}gram exp/graph_${n}gram"); done
  passes+=(" exp/graph")
  for pass in "${passes[@]}"; do
    suffix=${pass%% *} graph=${pass#* }
    pass_options "$suffix" dev
    for system in $systems; do
      for seed in $(system_seeds $system); do
        decode_line exp/am_${system}_s$seed $graph dev "$suffix" "${pass_args[@]}"
      done
    done
  done > exp/decode_dev_jobs.txt
  run_jobs decode_dev
  for pass in "${passes[@]}"; do
    suffix=${pass%% *}
    for system in $systems; do
      dev_dirs=()
      for seed in $seeds; do dev_dirs+=(exp/am_${system}_s$seed/decode_dev$suffix); done
      job_line python -m steps.choose_lm_weight --dev-dirs "${dev_dirs[@]}" \
        --out-dir exp/lm_weights/$system/decode_dev$suffix
    done
  done > exp/lm_weight_jobs.txt
  run_jobs lm_weight
  for pass in "${passes[@]}"; do
    suffix=${pass%% *} graph=${pass#* }
    for part in ${eval_parts#dev}; do
      pass_options "$suffix" $part
      for system in $systems; do
        for seed in $(system_seeds $system); do
          decode_line exp/am_${system}_s$seed $graph $part "$suffix" \
            --lm-weight-from exp/lm_weights/$system/decode_dev$suffix "${pass_args[@]}"
        done
      done
    done
  done > exp/decode_eval_jobs.txt
  run_jobs decode_eval
}

# report_ngrams: the decoder's n-gram ARPAs ordered by order (at one order: strength, main pass,
# rescoring): each strength's that stage 9 made, the main pass', the rescoring one.
report_ngrams() {
  local n entries=()
  for n in $strengths; do
    if [ -f data/lang_test_${n}gram/lm_${n}gram.arpa ]; then
      entries+=("$n data/lang_test_${n}gram/lm_${n}gram.arpa")
    else
      log "LM perplexity table: no data/lang_test_${n}gram/lm_${n}gram.arpa (LM strength $n: stage 9 makes it)"
    fi
  done
  entries+=("$lm_order data/lang_test/lm_${lm_order}gram.arpa")
  if [ "$rescore_lm_order" -gt 0 ]; then
    entries+=("$rescore_lm_order data/lang_rescore/lm_${rescore_lm_order}gram.arpa")
  fi
  printf '%s\n' "${entries[@]}" | sort -s -n -k1,1 | cut -d' ' -f2
}

stage_report() {
  log "Stage 10: results table -> RESULTS.md"
  strength_orders
  local part ngrams sups= ppl_opt=
  # What the subword teacher knows beyond the decoder's LMs: per-word perplexity on the
  # dev and test transcripts of the manifests (steps.lm_perplexity), copied into RESULTS.md.
  # A part or teacher that is not there is said, not skipped in silence.
  for part in dev test; do
    if [ -f data/manifests/${corpus}_supervisions_$part.jsonl.gz ]; then
      sups="$sups data/manifests/${corpus}_supervisions_$part.jsonl.gz"
    else
      log "LM perplexity table: no $part part (data/manifests/${corpus}_supervisions_$part.jsonl.gz)"
    fi
  done
  if [ ! -f exp/lm_subword/final.pt ]; then
    log "LM perplexity table left out: no subword teacher exp/lm_subword/final.pt (levels: $levels)"
  elif [ -z "$sups" ]; then
    log "LM perplexity table left out: neither a dev nor a test part in data/manifests"
  else
    ngrams=$(report_ngrams)
    python -m steps.lm_perplexity --supervisions $sups --ngram $ngrams --teacher exp/lm_subword \
      --bpe-model $bpe_model --out exp/lm_perplexity
    ppl_opt="--lm-perplexity exp/lm_perplexity.txt"
  fi
  python -m steps.report --exp-dir exp --systems $systems --seeds $seeds ${aa_seeds:+--aa-seeds $aa_seeds} $ppl_opt \
    --strength-orders $strengths --lm-order $lm_order --rescore-lm-order $rescore_lm_order \
    --config-files ${parse_options_configs:-} --options="$run_options" --out RESULTS.md
  cat RESULTS.md
  for part in ${eval_parts#dev test}; do
    log "$part (not in the table): $(grep -h WER exp/am_*_s*/decode_$part/wer 2>/dev/null | wc -l) decodes," \
        "WERs in exp/am_<system>_s<seed>/decode_$part/wer"
  done
}
