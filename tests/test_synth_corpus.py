"""The synth corpus' speech (local/synth: espeak.py, voices.py, boundaries.py, noise.py,
render.py, prepare.py): the espeak binding, speakers, true boundaries checked against the
energy of real synthesised speech, and the manifests of a small corpus made through the
job runner (validity, resume, determinism, bad input)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from local.synth import __main__ as cli
from local.synth import boundaries, espeak, noise, render, voices
from local.synth.config import PARTS, SynthDataConfig
from steps.core.config import load_config

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "egs" / "synth" / "s5"
SR = 22050


@pytest.fixture(scope="module")
def engine():
    return espeak.Espeak()


# ---------------------------------------------------------------- binding and speakers

def test_espeak_binding(engine):
    assert engine.sample_rate == 22050
    engine.set_voice("en-us+m3")
    engine.set_parameter(espeak.RATE, 175)
    assert engine.get_parameter(espeak.RATE) == 175
    out = engine.synth("turn on the kitchen lights")
    assert out.samples.dtype == np.int16 and 1.0 < len(out.samples) / SR < 3.0
    words = [e for e in out.events if e.type == espeak.EVENT_WORD]
    phones = [e.name for e in out.events if e.type == espeak.EVENT_PHONEME]
    assert [w.text_position for w in words] == [1, 6, 13, 21]  # "on the": one group
    assert phones[:3] == ["t", "3:", "n"] and phones[-1].startswith("_")
    assert engine.text_to_phonemes("kitchen") == ["k", "I", "tS", "@", "n"]
    # espeak groups "on the" under one text position; each word phonemised alone:
    assert engine.text_to_phonemes("on") + engine.text_to_phonemes("the") == ["O2", "n", "D", "@2"]
    engine.set_voice_by_properties("en-us", gender=2)
    female = engine.synth("hello")
    assert len(female.samples) > 0
    with pytest.raises(espeak.EspeakError):
        engine.set_voice("no-such-voice")


def test_speakers_are_disjoint_between_parts():
    for name in ("data_default.yaml", "data_tiny.yaml"):
        config = load_config(RECIPE / "conf" / name, SynthDataConfig)
        speakers = voices.make_speakers(config.speakers, config.seed)
        pairs = {p: {(s.accent, s.variant) for s in speakers[p]} for p in PARTS}
        assert [len(pairs[p]) for p in PARTS] == [
            config.speakers.num_train, config.speakers.num_dev, config.speakers.num_test]
        assert not pairs["train"] & pairs["dev"]
        assert not pairs["train"] & pairs["test"]
        assert not pairs["dev"] & pairs["test"]
        ids = [s.id for p in PARTS for s in speakers[p]]
        assert len(set(ids)) == len(ids)
        # The same config gives the same speakers.
        assert voices.make_speakers(config.speakers, config.seed) == speakers
    default = load_config(RECIPE / "conf" / "data_default.yaml", SynthDataConfig)
    train = voices.make_speakers(default.speakers, default.seed)["train"]
    assert len(train) >= 60
    assert {s.accent for s in train} == set(default.speakers.accents)
    assert {s.variant for s in train} == set(default.speakers.variants)
    assert {s.gender for s in train} == {"male", "female"}


# ---------------------------------------------------------------- true boundaries

def _frames_db(x: np.ndarray, frame: int) -> np.ndarray:
    n = len(x) // frame
    e = np.mean(x[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    return 10 * np.log10(e + 1e-9)


def _onset(x, start, stop, threshold, frame):
    """First sample of the first frame in [start, stop) louder than threshold (power)."""
    for a in range(max(0, start), stop, frame):
        if np.mean(x[a:a + frame].astype(np.float64) ** 2) > threshold:
            return a
    return None


def _offset(x, start, stop, threshold, frame):
    """End of the last frame in [start, stop) louder than threshold."""
    last = None
    for a in range(max(0, start), stop, frame):
        if np.mean(x[a:a + frame].astype(np.float64) ** 2) > threshold:
            last = a + frame
    return last


CASES = [
    # (voice, rate, spoken text with commas for pauses)
    ("en-us+m3", 175, "turn on the kitchen lights, please and set the timer for twenty minutes"),
    ("en+m1", 150, "book a table for two at the italian restaurant, tomorrow at eight"),
    ("en-gb-scotland+f1", 200, "remind me to call my brother, before the dentist appointment"),
    ("en-us+f2", 170, "make the desk lamp in the kitchen brighter, then turn the porch light off"),  # echo
    ("en-029+m2", 160, "what is the weather going to be like in boston, tomorrow"),  # echo
]


@pytest.mark.parametrize("voice,rate,text", CASES)
def test_true_boundaries_match_the_energy_of_clean_speech(engine, voice, rate, text):
    accent, variant = voice.split("+")
    engine.set_voice(voice)
    engine.set_parameter(espeak.RATE, rate)
    out = engine.synth(text)
    words = text.replace(",", "").split()
    citations = boundaries.Citations(engine)
    delay, gain = voices.variant_echo(engine.data_path(), variant, SR)
    assert (delay > 0) == (variant in ("m2", "f2")), "m2 and f2 have an echo, m1 m3 f1 none"
    quiet = boundaries.quiet_samples(out.samples, delay, gain)
    truth = boundaries.true_alignment(out.events, quiet, SR, words, [citations(accent, w) for w in words])
    segs = truth.words
    assert [s.symbol for s in segs] == [w.upper() for w in words]
    assert truth.mapping_cost / len(words) < 0.5
    # Ordered, no overlap, every word has some duration.
    for a, b in zip(segs, segs[1:]):
        assert a.start < a.end <= b.start
    # The direct sound (echo taken out): silence is where quiet_samples says.
    direct = np.where(quiet, 0.0, out.samples.astype(np.float64))
    frame = SR // 1000  # 1 ms
    peak = np.max(np.convolve(direct ** 2, np.ones(220) / 220, "same"))
    loud = peak * 10 ** (-45 / 10)  # -45 dB re the loudest 10 ms

    # Silence before the first word's start, energy right after it.
    first = segs[0]
    assert np.all(quiet[: first.start])
    assert np.max(_frames_db(direct[first.start:first.start + 10 * frame], frame)) > 10 * np.log10(loud)
    pauses = [i for i in range(1, len(segs)) if segs[i].start > segs[i - 1].end]
    assert len(pauses) == text.count(",")
    for i in pauses:
        # A word after a pause starts at the energy onset, the word before ends at the
        # energy offset (within 5 ms = half a 10 ms frame).
        onset = _onset(direct, segs[i - 1].end, segs[i].end, loud, frame)
        offset = _offset(direct, segs[i - 1].start, segs[i].start - 5 * frame, loud, frame)
        assert abs(onset - segs[i].start) <= 0.005 * SR, (segs[i], onset)
        assert abs(offset - segs[i - 1].end) <= 0.005 * SR, (segs[i - 1], offset)
        assert quiet[segs[i - 1].end:segs[i].start].mean() > 0.95
    last = segs[-1]
    assert abs(_offset(direct, last.start, len(direct), loud, frame) - last.end) <= 0.005 * SR

    # Connected words that start with a voiceless stop: the closure (silence) belongs to
    # the word, so the start sits at the previous word's energy offset.
    phones = {p.start: p.symbol for p in truth.phones}
    checked = 0
    for i in range(1, len(segs)):
        if i in pauses or phones.get(segs[i].start, "?")[0] not in "ptk":
            continue
        burst = _onset(direct, segs[i].start, segs[i].end, loud, frame)
        closure = burst - segs[i].start
        if closure < 0.02 * SR:
            continue  # no closure silence here (e.g. after a nasal)
        assert quiet[segs[i].start:burst - frame].mean() > 0.95
        offset = _offset(direct, segs[i - 1].start, segs[i].start + frame, loud, frame)
        assert abs(offset - segs[i].start) <= 0.005 * SR, (segs[i], offset)
        checked += 1
    assert checked >= 1


def test_grouped_words_are_split_by_their_own_phonemes(engine):
    engine.set_voice("en-us+m3")
    engine.set_parameter(espeak.RATE, 175)
    text = "turn on the kitchen lights"
    out = engine.synth(text)
    words = text.split()
    citations = boundaries.Citations(engine)
    truth = boundaries.true_alignment(out.events, boundaries.quiet_samples(out.samples), SR, words,
                                 [citations("en-us", w) for w in words])
    phone_events = {e.name: e.sample for e in out.events if e.type == espeak.EVENT_PHONEME}
    word_events = [e.sample for e in out.events if e.type == espeak.EVENT_WORD]
    on, the = truth.words[1], truth.words[2]
    # "on the" is one group in espeak (one word event); THE starts at its D.
    assert on.start == phone_events["O2"] and the.start == phone_events["D"] == on.end
    # ON's word event fires one phoneme early (at TURN's n); the truth does not follow it.
    assert word_events[1] < on.start
    # KITCHEN starts at its closure: the word event, ~50 ms before the k burst.
    kitchen = truth.words[3]
    assert kitchen.start == word_events[2]
    assert 0.03 * SR < phone_events["k"] - kitchen.start < 0.08 * SR


def test_rendered_audio_keeps_the_boundaries_after_resampling_and_padding(engine):
    config = load_config(RECIPE / "conf" / "data_tiny.yaml", SynthDataConfig)
    config.audio.noise_weights = {"none": 1.0}
    config.audio.pause_prob = 1.0
    speaker = voices.Speaker("en-us", "m4", 165, 50, 60)
    utt = render.Utterance("train-000001", "train", "SET THE TIMER FOR TWENTY MINUTES AND CALL MY MOTHER", speaker)
    rendered = render.render(engine, boundaries.Citations(engine), utt, config, None)
    rec, sup = render.make_manifest_entries(utt, Path("x.flac"), rendered, 16000)
    x = rendered.audio
    assert rec.num_samples == len(x) and rec.sampling_rate == 16000
    words = sup.alignment["word"]
    assert [w.symbol for w in words] == utt.text.split()
    assert config.audio.pad_start[0] - 0.01 <= words[0].start
    frame = 16  # 1 ms
    peak = np.max(np.convolve(x.astype(np.float64) ** 2, np.ones(160) / 160, "same"))
    loud = peak * 10 ** (-45 / 10)
    first = int(round(words[0].start * 16000))
    assert np.max(np.abs(x[: first - 2 * frame])) < 1e-4  # padding + espeak's lead-in
    onset = _onset(x, 0, len(x), loud, frame)
    assert abs(onset - first) <= 0.005 * 16000
    gaps = [i for i in range(1, len(words)) if words[i].start > words[i - 1].end + 1e-4]
    assert len(gaps) == 1  # the one pause asked for
    i = gaps[0]
    after = int(round(words[i].start * 16000))
    onset = _onset(x, int(round(words[i - 1].end * 16000)) + 5 * frame, len(x), loud, frame)
    assert abs(onset - after) <= 0.005 * 16000
    assert sup.alignment["espeak_phone"][0].start == pytest.approx(words[0].start)
    assert any(p.symbol == "_" for p in sup.alignment["espeak_phone"])


def test_noise_is_mixed_at_the_drawn_snr(engine):
    config = load_config(RECIPE / "conf" / "data_tiny.yaml", SynthDataConfig)
    speaker = voices.Speaker("en", "m1", 170, 40, 50)
    for kind in ("white", "pink", "brown", "hum"):
        config.audio.noise_weights = {kind: 1.0}
        utt = render.Utterance(f"dev-{kind}", "dev", "WHAT IS THE WEATHER LIKE IN LONDON TODAY", speaker)
        noisy = render.render(engine, boundaries.Citations(engine), utt, config, None)
        config.audio.noise_weights = {"none": 1.0}
        clean = render.render(engine, boundaries.Citations(engine), utt, config, None)
        assert noisy.info["noise"] == kind and len(noisy.audio) == len(clean.audio)
        added = noisy.audio - clean.audio
        snr = 10 * np.log10(noise.active_power(clean.audio, 16000) / np.mean(added.astype(np.float64) ** 2))
        assert config.audio.snr_db[0] - 0.5 <= snr <= config.audio.snr_db[1] + 0.5
        assert abs(snr - noisy.info["snr_db"]) < 0.3


# ---------------------------------------------------------------- the corpus

TEXTS = {
    "train": ["TURN ON THE KITCHEN LIGHTS", "WHAT TIME IS IT IN PARIS", "",
              "REMIND ME TO CALL MY SISTER TOMORROW", "PLAY SOME JAZZ IN THE LIVING ROOM",
              "HOW FAR IS BOSTON FROM NEW YORK"],
    "dev": ["SET A TIMER FOR TEN MINUTES", "IS IT GOING TO RAIN ON FRIDAY"],
    "test": ["ADD MILK TO MY SHOPPING LIST", "CALL MY MOTHER BACK"],
}


def _make_inputs(tmp: Path) -> Path:
    text = tmp / "data" / "text"
    text.mkdir(parents=True)
    for part, lines in TEXTS.items():
        body = "".join(f"{part}-{i:06d} {t}".rstrip() + "\n" for i, t in enumerate(lines, 1))
        (text / f"{part}.txt").write_text(body)
    (tmp / "conf.yaml").write_text(
        "seed: 3\nspeakers:\n  num_train: 3\n  num_dev: 1\n  num_test: 1\n"
        "audio:\n  pause_prob: 0.5\n")
    return tmp / "conf.yaml"


def _run(tmp: Path, nj: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "local.synth", "--config", "conf.yaml", "--text-dir", "data/text",
           "--out-dir", "data", "--nj", str(nj)]
    return subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300)


def _run_here(capsys, nj: int = 1) -> tuple[int, str]:
    """The same, in this process (no torch/lhotse start-up per run)."""
    code = cli.main(["--config", "conf.yaml", "--text-dir", "data/text", "--out-dir", "data",
                       "--nj", str(nj)])
    return code, capsys.readouterr().err


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_small_corpus_manifests_resume_and_bad_input(tmp_path, monkeypatch, capsys):
    from lhotse import load_manifest
    from lhotse.qa import validate_recordings_and_supervisions

    _make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)  # recordings name their audio relative to the recipe
    result = _run(tmp_path, nj=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "data" / "audio" / "log" / "synth.2.log").is_file()
    manifests = tmp_path / "data" / "manifests"
    speakers = {}
    for part, lines in TEXTS.items():
        recs = load_manifest(manifests / f"synth_recordings_{part}.jsonl.gz")
        sups = load_manifest(manifests / f"synth_supervisions_{part}.jsonl.gz")
        validate_recordings_and_supervisions(recs, sups, read_data=True)
        expected = {f"{part}-{i:06d}": t for i, t in enumerate(lines, 1) if t}
        assert sorted(r.id for r in recs) == sorted(expected)
        assert sorted(s.id for s in sups) == sorted(expected)
        speakers[part] = {s.speaker for s in sups}
        for s in sups:
            r = recs[s.id]
            assert s.recording_id == s.id and s.start == 0 and s.duration == pytest.approx(r.duration)
            assert s.text == expected[s.id] and s.language == "English" and s.speaker
            assert [a.symbol for a in s.alignment["word"]] == s.text.split()
            assert s.alignment["espeak_phone"]
            assert all(0 <= a.start and a.end <= r.duration + 1e-4 for a in s.alignment["word"])
            path = Path(r.sources[0].source)
            assert path.parts[:4] == ("data", "audio", part, s.speaker) and path.suffix == ".flac"
            info = sf.info(str(tmp_path / path))
            assert info.samplerate == 16000 and info.channels == 1 and info.frames == r.num_samples
        report = (manifests / f"synth_skipped_{part}.txt").read_text().splitlines()
        assert report == (["train-000003 empty-transcript"] if part == "train" else [])
    assert not speakers["train"] & speakers["dev"] and not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    assert "train-000003: empty-transcript" in result.stderr
    assert "skipped 1 of 6" in result.stderr

    # A finished part is not redone.
    stamp = (manifests / "synth_recordings_dev.jsonl.gz").stat().st_mtime_ns
    code, err = _run_here(capsys)
    assert code == 0 and "nothing to do" in err
    assert (manifests / "synth_recordings_dev.jsonl.gz").stat().st_mtime_ns == stamp

    # Resume: only the utterance whose files are gone is made again, identically.
    flacs = sorted((tmp_path / "data" / "audio" / "train").rglob("*.flac"))
    victim = flacs[1]
    before = {f: (_md5(f), f.stat().st_mtime_ns) for f in flacs}
    victim.unlink()
    victim.with_suffix(".json").unlink()
    for f in manifests.glob("synth_*_train.*"):
        f.unlink()
    code, err = _run_here(capsys)
    assert code == 0, err[-3000:]
    for f in flacs:
        md5, mtime = before[f]
        assert _md5(f) == md5
        assert (f.stat().st_mtime_ns == mtime) == (f != victim)
    assert (manifests / "synth_supervisions_train.jsonl.gz").is_file()

    # A file lost after synthesis is reported, not fatal.
    flacs[0].unlink()
    for f in manifests.glob("synth_*_train.*"):
        f.unlink()
    # Its sidecar says "done", so synthesis leaves it; the checks find the file missing.
    code, err = _run_here(capsys)
    assert code == 0, err[-3000:]
    assert "missing-audio" in err
    report = (manifests / "synth_skipped_train.txt").read_text().splitlines()
    assert sorted(report) == sorted([f"{flacs[0].stem} missing-audio", "train-000003 empty-transcript"])
    assert len(load_manifest(manifests / "synth_recordings_train.jsonl.gz")) == 4

    # Changed inputs are noticed: a new dev transcript remakes that utterance (and the
    # dev manifests), the other dev utterance is kept as it is.
    dev_flacs = {f.stem: f for f in (tmp_path / "data" / "audio" / "dev").rglob("*.flac")}
    before = {k: (_md5(f), f.stat().st_mtime_ns) for k, f in dev_flacs.items()}
    dev_text = tmp_path / "data" / "text" / "dev.txt"
    dev_text.write_text(dev_text.read_text().replace("TEN MINUTES", "TWENTY MINUTES"))
    code, err = _run_here(capsys)
    assert code == 0, err[-3000:]
    assert _md5(dev_flacs["dev-000001"]) != before["dev-000001"][0]
    assert dev_flacs["dev-000002"].stat().st_mtime_ns == before["dev-000002"][1]
    sups = load_manifest(manifests / "synth_supervisions_dev.jsonl.gz")
    assert sups["dev-000001"].text == "SET A TIMER FOR TWENTY MINUTES"
    assert [a.symbol for a in sups["dev-000001"].alignment["word"]][-2:] == ["TWENTY", "MINUTES"]


def test_a_failed_synthesis_is_reported_not_fatal(tmp_path, monkeypatch, capsys):
    _make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    real_render = render.render

    def fake_render(engine, citations, utt, config, babble):
        if utt.id == "dev-000002":
            raise RuntimeError("espeak said nothing")
        return real_render(engine, citations, utt, config, babble)

    monkeypatch.setattr(render, "render", fake_render)
    code = cli.main(["--config", "conf.yaml", "--text-dir", "data/text", "--out-dir", "data",
                       "--parts", "dev"])
    err = capsys.readouterr().err
    assert code == 0, err[-3000:]
    assert "dev-000002: synthesis failed: RuntimeError: espeak said nothing" in err
    report = (tmp_path / "data" / "manifests" / "synth_skipped_dev.txt").read_text()
    assert report == "dev-000002 synthesis-failed\n"
    assert not (tmp_path / "data" / "manifests" / "synth_recordings_train.jsonl.gz").exists()
    assert cli.main(["--config", "conf.yaml", "--text-dir", "nowhere", "--out-dir", "data"]) == 1
