# Source this file for senone_ali_dir() (after utils/log.sh): the folder of the senone alignments.
# The senone alignments (stage 5) as the later stages read them: exp/senone_ali, or where only
# an older run's folder is there, its old name exp/tri_ali (Kaldi's triphone name, though it
# held a neural alignment model's alignments, as exp/tri1 held that model and exp/tri_conv
# the converted monophone alignments; those are now exp/aligner and exp/senone_conv).
senone_ali_dir() {
  if [ ! -d exp/senone_ali ] && [ -d exp/tri_ali ]; then
    log "reading exp/tri_ali, an older run's name of exp/senone_ali (stage 5 writes the new name)" >&2
    echo exp/tri_ali
  else
    echo exp/senone_ali
  fi
}
