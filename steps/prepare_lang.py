"""Make the lang directory (Kaldi formats) from CMUdict, the LM text and the transcripts.

Vocabulary: the words of the LM text that have a pronunciation (CMUdict, an extra lexicon,
G2P) and the words of the training transcripts.
Pronunciations: CMUdict's (the `cmudict` package), stress digits removed, duplicates that
this creates merged (first occurrence kept), the first --num-prons kept, in CMUdict's
order. `!SIL` is pronounced SIL and `<UNK>` SPN. The phone set is CMUdict's 39 phones
(all of them, whether or not the vocabulary uses them, so that phone ids do not depend
on the corpus) after SIL and SPN.

--extra-lexicon FILE (optional, may be repeated) merges another lexicon in, e.g. the
LibriSpeech lexicon (librispeech-lexicon.txt: CMUdict plus G2P pronunciations of the
LM corpus' other words). Lines are `WORD P1 P2 ...` (tabs or spaces); stress digits are
removed, words uppercased. A word's pronunciations are CMUdict's first, then the extra
lexicons' in file order, duplicates merged, the first --num-prons kept: the extra
lexicon gives the words CMUdict lacks their pronunciations and never displaces
CMUdict's. Lines that cannot be used (no pronunciation, a phone outside the phone set,
a special word) are logged with counts and listed in extra_lexicon_rejected.txt.

--g2p espeak (the default; `none` turns it off) gives the words of the training transcripts
and of the LM text that no lexicon has (CMUdict, extra lexicons) a pronunciation made by
grapheme-to-phoneme conversion: espeak-ng's en-us phonemes mapped onto CMUdict's phones
(steps/lang/g2p.py; measured against CMUdict in BENCHMARKS.md, "bench_g2p"). They are
written to a reviewable lexicon, --g2p-lexicon (default <lang-dir>/g2p_lexicon.txt,
`WORD P1 P2 ...`), which later runs read as it is: a person may correct or add lines
(an edited file wins, and makes the next run redo the lang directory), and only the words
it lacks are converted and appended; delete a line to have it made again. Its
pronunciations come after CMUdict's and the extra lexicons' (so it can also add a second
one to a word they have). Words that cannot be converted (digits, symbols) and lines of
the file that cannot be used are listed in g2p_rejected.txt. At most --g2p-max-words
words of the LM text (the most frequent) get one; the training transcripts' words all do.

Words of the transcripts that are not in the lexicon stay in the transcripts (later
stages map them to <UNK>); they are listed per part in oov_<part>.txt. Words of the LM
text that the lexicon (CMUdict, any extra lexicon, G2P) does not know are left out of the
vocabulary and listed in oov_lm_text.txt. Both as `WORD COUNT`, most frequent first.

Reads:  <manifest-dir>/<corpus>_supervisions_<part>.jsonl.gz, --lm-text, the G2P lexicon if there
Writes: <lang-dir>/lexicon.txt            WORD P1 P2 ... (one line per pronunciation)
        <lang-dir>/lexicon_disambig.txt   the same with #1, #2, ... where a pronunciation
                                          is shared or a prefix of another (Kaldi's
                                          utils/add_lex_disambig.pl)
        <lang-dir>/phones.txt             <eps> 0, SIL 1, SPN 2, phones sorted, #0 ... #(D+1)
                                          (D = highest lexicon disambig symbol; #0 is for
                                          the LM back-off, #(D+1) for optional silence
                                          in the lexicon FST, as in Kaldi's prepare_lang.sh)
        <lang-dir>/words.txt              <eps> 0, !SIL 1, <UNK> 2, words sorted, #0, <s>, </s>
        <lang-dir>/silence_phones.txt, nonsilence_phones.txt, optional_silence.txt
        <lang-dir>/extra_questions.txt    one phone set per line: the silence phones, then
                                          CMUdict's phonetic classes (vowel, stop, ...)
        <lang-dir>/oov_<part>.txt, oov_lm_text.txt
        <lang-dir>/extra_lexicon_rejected.txt  `file:line reason: text` (--extra-lexicon only)
        <lang-dir>/g2p_lexicon.txt        the G2P pronunciations, for review (--g2p-lexicon)
        <lang-dir>/g2p_rejected.txt       `WORD reason`, `file:line reason: text` (G2P only)
        <lang-dir>/.done                  marker with the inputs' fingerprint

Example:
  python -m steps.prepare_lang --manifest-dir data/manifests --corpus synth \\
      --lm-text data/text/lm_text.txt --lang-dir data/lang --num-prons 2 \\
      [--extra-lexicon /data/librispeech-lexicon.txt] [--g2p none]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from steps.core import atomic
from steps.core.log import setup_logging
from steps.lang.g2p import METHODS as G2P_METHODS
from steps.lang.prepare import prepare_lang, transcript_lines

log = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest-dir", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--parts", nargs="+", default=["train", "dev", "test"],
                        help="parts whose transcripts are checked for OOVs")
    parser.add_argument("--train-part", default="train",
                        help="the part whose transcript words join the vocabulary")
    parser.add_argument("--lm-text", required=True)
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--num-prons", type=int, default=2, help="CMUdict pronunciations kept per word")
    parser.add_argument("--extra-lexicon", action="append", default=[], metavar="FILE",
                        help="a lexicon (`WORD P1 P2 ...`) merged after CMUdict; may be repeated")
    parser.add_argument("--g2p", choices=[*G2P_METHODS, "none"], default="espeak",
                        help="pronunciations for the words no lexicon has (default espeak; none: off)")
    parser.add_argument("--g2p-lexicon", metavar="FILE",
                        help="the reviewable G2P lexicon, read and extended (default <lang-dir>/g2p_lexicon.txt)")
    parser.add_argument("--g2p-max-words", type=int, default=20000,
                        help="LM-text words that get G2P pronunciations at most, the most frequent")
    parser.add_argument("--force", action="store_true", help="redo even if done with the same inputs")
    return parser


def main(argv: list[str] | None = None) -> None:
    # Length: the checks, the fingerprint (with and without G2P) and the lang directory, in order
    parser = get_parser()
    args = parser.parse_args(argv)
    setup_logging()
    if args.num_prons < 1:
        parser.error("--num-prons must be at least 1")
    if args.g2p_max_words < 0:
        parser.error("--g2p-max-words must be 0 or more")

    lang_dir = Path(args.lang_dir)
    sup_paths = {p: Path(args.manifest_dir) / f"{args.corpus}_supervisions_{p}.jsonl.gz" for p in args.parts}
    extra = [Path(p) for p in args.extra_lexicon]
    inputs = [Path(args.lm_text), *sup_paths.values(), *extra]
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise SystemExit(f"prepare_lang: missing input(s): {', '.join(missing)}")
    if args.train_part not in sup_paths:
        parser.error(f"--train-part {args.train_part} is not one of --parts")
    options = {"num_prons": args.num_prons, "train_part": args.train_part}
    if extra:  # only then: the fingerprints of runs without one stay as they were
        options["extra_lexicons"] = [str(p) for p in extra]
    before_g2p = atomic.inputs_fingerprint(inputs, **options)
    g2p_path = None
    if args.g2p != "none":
        g2p_path = Path(args.g2p_lexicon) if args.g2p_lexicon else lang_dir / "g2p_lexicon.txt"
        # the file is an input too: an edit redoes the lang directory
        inputs.append(g2p_path)
        options.update(g2p=args.g2p, g2p_max_words=args.g2p_max_words)
    stamp = atomic.inputs_fingerprint(inputs, **options)
    outputs = [lang_dir / "lexicon.txt", lang_dir / "phones.txt"]
    if not args.force and g2p_path and no_word_needed_g2p(lang_dir, before_g2p, args.train_part, outputs):
        log.info("up to date: %s (made before G2P existed, and no word needed it)", lang_dir)
        return
    if atomic.up_to_date(lang_dir, stamp, args.force, outputs):
        return
    atomic.clear_done(lang_dir)
    make_g2p = G2P_METHODS[args.g2p] if g2p_path else None
    with open(args.lm_text, encoding="utf-8") as f:
        stats = prepare_lang({p: transcript_lines(path) for p, path in sup_paths.items()}, f,
                             lang_dir, args.num_prons, args.train_part, extra, make_g2p, g2p_path,
                             args.g2p_max_words)
    if g2p_path:  # as this run left it, so that the next run finds it unchanged
        stamp["inputs"][str(g2p_path)] = atomic.path_stamp(g2p_path)
    atomic.mark_done(lang_dir, stats, stamp)
    log.info("wrote %s", lang_dir)


def no_word_needed_g2p(lang_dir: Path, before_g2p: dict, train_part: str, outputs: list[Path]) -> bool:
    """Whether the lang directory was finished, with these inputs, before G2P existed, and
    had no word for it to convert (so it is what G2P would make now): a finished recipe is
    not redone from stage 3 on by this version."""
    if not atomic.done_with(lang_dir, before_g2p) or not all(p.exists() for p in outputs):
        return False
    info = json.loads((lang_dir / atomic.DONE).read_text())
    return "g2p_words" not in info and info.get("oov_lm_text") == 0 and info.get(f"oov_{train_part}") == 0


if __name__ == "__main__":
    main()
