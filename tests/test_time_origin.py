"""Alignment times keep lhotse's convention (steps.data.ali_times): on the recording's timeline,
whatever the cut's and the supervision's starts. Real utterances of the tiny recipe get
0.7 s of leading noise, so their supervisions start at 0.7 s (cut at 0), and a window of
the same recording starts at 0.4 s (supervision at 0.3 s within it). Aligned by the
recipe's monophone model, their word boundaries, converted senone alignments, soft-label
token spans and CTM lines must land where the unshifted utterance's do, moved by the lead."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording
from lhotse.supervision import AlignmentItem
from lhotse.utils import fastcopy

from steps.align import main as align_main
from steps.compute_fbank import compute_features
from steps.data.ali_times import frame_items, item_frames
from steps.data.fbank import KnfFbank, KnfFbankConfig
from steps.hmm.topology import Topology
from steps.kd.alignment_tokens import UnitMaps, cut_tokens
from steps.lang.lexicon import Lang
from steps.lm.tokens import load_sentencepiece, phone_units
from steps.scoring.boundaries import boundary_errors, score_cuts
from steps.tree.convert import convert_cuts
from steps.tree.decision_tree import Tree
from utils.show_alignment import ctm_lines

LEAD = 0.7      # seconds of noise put before each utterance
WINDOW = 0.4    # start of the windowed cut in the padded recording
NUM_CUTS = 4


def test_frames_and_items_round_trip():
    items = frame_items([("a", 0, 12), ("b", 12, 30)], str, cut_start=0.4)
    assert [(i.start, i.duration) for i in items] == [(0.4, 0.12), (0.52, 0.18)]
    assert [item_frames(i, 0.4, 100) for i in items] == [(0, 12), (12, 30)]
    # an item before the cut or past its end is clipped to the cut's frames
    assert item_frames(AlignmentItem("x", start=0.1, duration=0.5), 0.4, 15) == (0, 15)


def padded(cut, tmp_path):
    """The cut's recording with LEAD seconds of noise before it, as a whole-recording cut
    (supervision at LEAD) and as a window starting at WINDOW."""
    audio = cut.load_audio()[0]
    sr = cut.sampling_rate
    # the recording's own lead-in before its first word (the synthesiser's background), repeated
    first_word = cut.supervisions[0].alignment["word"][0].start
    lead_in = audio[: max(int((first_word - 0.03) * sr), sr // 50)]
    noise = np.tile(lead_in, int(LEAD * sr) // len(lead_in) + 1)[: int(LEAD * sr)]
    path = tmp_path / f"{cut.recording_id}.wav"
    sf.write(path, np.concatenate([noise, audio]), sr)
    recording = Recording.from_file(path, recording_id=cut.recording_id)
    sup = cut.supervisions[0]
    moved = {kind: [item.with_offset(LEAD) for item in items] for kind, items in sup.alignment.items()}
    sup = fastcopy(sup, start=LEAD, alignment=moved)
    whole = MonoCut(id=f"{cut.id}-lead", start=0.0, duration=recording.duration, channel=0,
                    recording=recording, supervisions=[sup])
    window = fastcopy(whole.truncate(offset=WINDOW, preserve_id=True), id=f"{cut.id}-window")
    return whole, window


@pytest.fixture(scope="module")
def aligned(tiny_recipe, tmp_path_factory):
    """{name: aligned cuts} for the unshifted dev cuts, the padded ones and the windows."""
    recipe = tiny_recipe.dir
    tmp = tmp_path_factory.mktemp("origin")
    originals = CutSet.from_file(recipe / "data/fbank/synth_cuts_dev.jsonl.gz").subset(first=NUM_CUTS)
    originals = CutSet.from_cuts(  # their paths are relative to the recipe
        fastcopy(c, features=fastcopy(c.features, storage_path=str(recipe / c.features.storage_path)),
                 recording=fastcopy(c.recording, sources=[fastcopy(s, source=str(recipe / s.source))
                                                          for s in c.recording.sources]))
        for c in originals)
    pairs = [padded(c, tmp) for c in originals]
    made, skipped = compute_features(CutSet.from_cuts([c for pair in pairs for c in pair]),
                                     KnfFbank(KnfFbankConfig()), tmp / "feats", 16000, "fbank")
    assert not skipped
    result = {}
    for name, cuts in (("original", originals), ("lead", [c for c in made if c.id.endswith("-lead")]),
                       ("window", [c for c in made if c.id.endswith("-window")])):
        path = tmp / f"{name}.jsonl.gz"
        CutSet.from_cuts(cuts).to_file(path)
        align_main(["--model", str(recipe / "exp/mono/final.pt"), "--cuts", str(path),
                    "--lang-dir", str(recipe / "data/lang"), "--part", name, "--out-dir", str(tmp / "ali")])
        result[name] = CutSet.from_file(tmp / "ali" / f"cuts_{name}.jsonl.gz")
        assert len(result[name]) == NUM_CUTS, name
    return recipe, result


def by_source(cuts):
    return {c.id.rsplit("-", 1)[0] if c.id.endswith(("-lead", "-window")) else c.id: c for c in cuts}


@pytest.mark.parametrize("name,cut_start", [("lead", 0.0), ("window", WINDOW)])
def test_word_boundaries_and_ctm_follow_the_recording(aligned, name, cut_start):
    recipe, cuts = aligned
    original, quality = score_cuts(cuts["original"])[0], score_cuts(cuts[name])[0]
    # the same boundary accuracy as the unshifted utterances (against truth moved by LEAD)
    assert quality.boundaries == original.boundaries > 0
    assert abs(quality.median_ms - original.median_ms) <= 10.0
    assert quality.within_50ms >= original.within_50ms - 0.1
    for source, cut in by_source(cuts[name]).items():
        assert cut.start == pytest.approx(cut_start)
        ref = by_source(cuts["original"])[source].supervisions[0].alignment["ali_word"]
        hyp = cut.supervisions[0].alignment["ali_word"]
        speech = [i for i in hyp if i.symbol not in ("!SIL", "<eps>")]
        assert speech[0].start >= LEAD - 0.05
        errors = boundary_errors([i.with_offset(LEAD) for i in ref if i.symbol not in ("!SIL", "<eps>")], speech)
        assert errors is not None and np.median(errors) <= 0.03
        # CTM times are the items' own, on the recording's timeline
        ctm = ctm_lines(cut.id, speech)
        assert [float(line.split()[2]) for line in ctm] == pytest.approx([i.start for i in speech], abs=0.006)


@pytest.fixture(scope="module")
def converted(aligned, tmp_path_factory):
    recipe, cuts = aligned
    from lhotse import NumpyHdf5Writer

    lang = Lang.load(recipe / "data/lang")
    topology = Topology.from_dict(__import__("json").loads((recipe / "exp/mono/topology.json").read_text()))
    tree = Tree.load(recipe / "exp/tree")
    tmp = tmp_path_factory.mktemp("convert")
    out = {}
    for name, part in cuts.items():
        done = []
        with NumpyHdf5Writer(tmp / f"{name}.h5", mode="w") as writer:
            num_done, skipped, *_ = convert_cuts(part, lang, topology, tree, writer, name, done.append)
        assert not skipped and num_done == len(done)
        out[name] = {c.id: c for c in done}
    return recipe, lang, tree, out


@pytest.mark.parametrize("name,lead_frames", [("lead", 70), ("window", 30)])
def test_senone_alignments_and_soft_label_spans_move_with_the_lead(converted, name, lead_frames):
    recipe, lang, tree, cuts = converted
    units = UnitMaps(lang, load_sentencepiece(recipe / "data/lang_bpe_300/bpe.model"), phone_units(lang))
    num_units = {"senone": tree.num_senones, "phone": len(units.phones), "subword": units.sp.get_piece_size()}
    for source, cut in by_source(cuts[name].values()).items():
        ref = by_source(cuts["original"].values())[source]
        a = np.asarray(ref.load_custom("senone_ali")).reshape(-1)
        b = np.asarray(cut.load_custom("senone_ali")).reshape(-1)
        shifted = b[lead_frames:lead_frames + len(a)]
        # mostly the same senones on the same (moved) frames; the realignment of the padded
        # audio differs a little (measured 0.83-0.9 with the tiny model)
        assert np.mean(shifted == a) >= 0.7
        ref_tokens, tokens = cut_tokens(ref, units, num_units), cut_tokens(cut, units, num_units)
        for level in ("senone", "phone", "subword"):
            assert tokens[level].tokens.tolist() == ref_tokens[level].tokens.tolist(), level
            moved = tokens[level].spans.astype(int) - lead_frames
            # every token's span starts and ends where the unshifted one's does, give or take
            # the frames the realignment of the noise-padded audio moves (not 30-70)
            assert np.abs(moved - ref_tokens[level].spans).max() <= 10, level
            assert np.median(np.abs(moved - ref_tokens[level].spans)) <= 1, level
