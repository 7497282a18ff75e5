"""Bad-input checks (local/manifest_checks.py) on real files: every case is reported with
its reason, counted, written to the report, and the rest passes through."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import AudioSource, Recording, RecordingSet, SupervisionSegment
from lhotse.qa import validate_recordings_and_supervisions

from local import manifest_checks as mc

SR = 16000


def _recording(rid: str, path: Path, num_samples: int = SR) -> Recording:
    return Recording(id=rid, sources=[AudioSource(type="file", channels=[0], source=str(path))],
                     sampling_rate=SR, num_samples=num_samples, duration=num_samples / SR)


def _supervision(sid: str, text: str | None = "HELLO WORLD", rid: str | None = None,
                 duration: float = 1.0) -> SupervisionSegment:
    return SupervisionSegment(id=sid, recording_id=rid or sid, start=0.0, duration=duration,
                              text=text, speaker="spk1")


def _make_files(d: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    x = (0.3 * np.sin(np.arange(SR) * 0.07) + 0.01 * rng.standard_normal(SR)).astype(np.float32)
    files = {}
    for name in ("good1", "good2", "empty_text", "beyond"):
        files[name] = d / f"{name}.flac"
        sf.write(files[name], x, SR, format="FLAC", subtype="PCM_16")
    data = files["good1"].read_bytes()
    files["truncated"] = d / "truncated.flac"
    files["truncated"].write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[len(data) // 3: len(data) // 3 + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    files["corrupt"] = d / "corrupt.flac"
    files["corrupt"].write_bytes(bytes(corrupt))
    files["not_audio"] = d / "not_audio.flac"
    files["not_audio"].write_bytes(b"this is not a flac file at all\n" * 50)
    files["zero"] = d / "zero.wav"
    sf.write(files["zero"], np.zeros(0, np.float32), SR)
    files["missing"] = d / "does_not_exist.flac"
    files["short"] = d / "short.flac"
    sf.write(files["short"], x[: SR // 4], SR, format="FLAC", subtype="PCM_16")
    return files


def test_each_bad_input_is_reported_with_its_reason(tmp_path, caplog):
    files = _make_files(tmp_path)
    recordings = [
        _recording("good1", files["good1"]),
        _recording("good2", files["good2"]),
        _recording("truncated", files["truncated"]),
        _recording("corrupt", files["corrupt"]),
        _recording("not_audio", files["not_audio"]),
        _recording("missing", files["missing"]),
        _recording("zero_file", files["zero"]),  # the manifest claims samples, the file has none
        _recording("zero_manifest", files["zero"], num_samples=0),
        _recording("empty_text", files["empty_text"]),
        _recording("beyond", files["beyond"]),
        _recording("short", files["short"]),  # file shorter than the manifest says
        _recording("orphan", files["good1"]),  # no supervision refers to it
    ]
    supervisions = [
        _supervision("good1"), _supervision("good2"), _supervision("truncated"),
        _supervision("corrupt"), _supervision("not_audio"), _supervision("missing"),
        _supervision("zero_file"), _supervision("zero_manifest", duration=0.5),
        _supervision("empty_text", text="  "),
        _supervision("beyond", duration=1.5),
        _supervision("short"),
        _supervision("no_audio_at_all"),  # its recording is not in the manifest
    ]
    caplog.set_level(logging.INFO)
    recs, sups, skipped = mc.filter_manifests(recordings, supervisions, tmp_path / "manifests",
                                              "toy", "train")
    expected = {
        "truncated": "unreadable-audio",
        "corrupt": "unreadable-audio",
        "not_audio": "unreadable-audio",
        "missing": "missing-audio",
        "zero_file": "zero-length-audio",
        "zero_manifest": "zero-length-audio",
        "empty_text": "empty-transcript",
        "beyond": "supervision-beyond-audio",
        "short": "audio-length-mismatch",
        "orphan": "no-supervision",
        "no_audio_at_all": "no-recording",
    }
    assert {s.id: s.reason for s in skipped} == expected
    assert len(skipped) == len(expected)  # one line per id, no double reports
    assert sorted(r.id for r in recs) == ["good1", "good2"]
    assert sorted(s.id for s in sups) == ["good1", "good2"]
    validate_recordings_and_supervisions(recs, sups)

    report = (tmp_path / "manifests" / "toy_skipped_train.txt").read_text().splitlines()
    assert sorted(report) == sorted(f"{k} {v}" for k, v in expected.items())
    # The log names every skipped id, and the counts per reason.
    text = caplog.text
    for item_id in expected:
        assert f"skipping {item_id}:" in text
    assert "skipped 11 of 13" in text
    assert "unreadable-audio 3" in text and "zero-length-audio 2" in text
    assert "missing-audio 1" in text and "empty-transcript 1" in text


def test_header_only_mode_and_clean_input(tmp_path, caplog):
    files = _make_files(tmp_path)
    recordings = [_recording("good1", files["good1"]), _recording("truncated", files["truncated"])]
    supervisions = [_supervision("good1"), _supervision("truncated")]
    # Headers only: a truncated FLAC's header is intact, so only decoding finds it.
    _, _, skipped = mc.check_manifests(recordings, supervisions, decode=False)
    assert skipped == []
    _, _, skipped = mc.check_manifests(recordings, supervisions, decode=True)
    assert [(s.id, s.reason) for s in skipped] == [("truncated", "unreadable-audio")]
    assert "lost sync" in skipped[0].detail or "decoded" in skipped[0].detail

    caplog.set_level(logging.INFO)
    recs, sups, skipped = mc.filter_manifests(recordings[:1], supervisions[:1], tmp_path, "toy", "dev")
    assert skipped == [] and len(recs) == 1 and len(sups) == 1
    assert (tmp_path / "toy_skipped_dev.txt").read_text() == ""
    assert "nothing skipped" in caplog.text


def test_a_bad_recording_drops_its_other_supervisions_too(tmp_path):
    files = _make_files(tmp_path)
    recordings = [_recording("long", files["missing"]), _recording("good1", files["good1"])]
    supervisions = [_supervision("long-a", rid="long", duration=0.4),
                    SupervisionSegment(id="long-b", recording_id="long", start=0.5, duration=0.4,
                                       text="MORE WORDS"),
                    _supervision("good1")]
    recs, sups, skipped = mc.check_manifests(recordings, supervisions)
    assert {s.id: s.reason for s in skipped} == {
        "long": "missing-audio", "long-a": "missing-audio", "long-b": "missing-audio"}
    assert [s.id for s in sups] == ["good1"] and [r.id for r in recs] == ["good1"]


# ---------------------------------------------------------------- issue 15: bad input a new corpus met

def _wav(path: Path, seconds: float = 2.0, rate: int = SR, channels: int = 1) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t)
    sf.write(path, np.stack([x] * channels, axis=1) if channels > 1 else x, rate, subtype="PCM_16")
    return path


def _cut_in_half(path: Path) -> Path:
    """The data cut in half, the header (declaring the full length) intact."""
    data = path.read_bytes()
    path.write_bytes(data[: 44 + (len(data) - 44) // 2])
    return path


def test_a_truncated_wav_is_reported_in_both_modes_and_never_passes(tmp_path):
    truncated = _cut_in_half(_wav(tmp_path / "cut.wav"))
    good = _wav(tmp_path / "good.wav")
    assert sf.info(str(truncated)).frames == SR  # libsndfile reports only what is there
    assert mc.declared_frames(truncated) == 2 * SR and mc.declared_frames(good) == 2 * SR
    # The old flow: lhotse's Recording.from_file takes the 1 s that is there as the recording.
    recordings = [Recording.from_file(truncated, recording_id="cut"),
                  Recording.from_file(good, recording_id="good")]
    assert recordings[0].num_samples == SR
    supervisions = [_supervision("cut", duration=1.0), _supervision("good", duration=2.0)]
    for decode in (True, False):
        recs, _, skipped = mc.check_manifests(recordings, supervisions, decode=decode)
        assert [(s.id, s.reason) for s in skipped] == [("cut", "truncated-audio")]
        assert "16000 samples (1.00 s), its header declares 32000 (2.00 s)" in skipped[0].detail
        assert [r.id for r in recs] == ["good"]
    # A manifest that holds the header's length is caught the same way.
    declared = Recording(id="cut", sources=recordings[0].sources, sampling_rate=SR,
                         num_samples=2 * SR, duration=2.0)
    _, _, skipped = mc.check_manifests([declared], [_supervision("cut", duration=2.0)])
    assert [(s.id, s.reason) for s in skipped] == [("cut", "truncated-audio")]


def test_channels_and_sampling_rate_are_flagged_at_stage_one(tmp_path):
    items = [mc.CorpusItem("stereo", _wav(tmp_path / "s.wav", rate=44100, channels=2), "A B", "s1"),
             mc.CorpusItem("cd_rate", _wav(tmp_path / "m.wav", rate=44100), "A B", "s1"),
             mc.CorpusItem("ok", _wav(tmp_path / "ok.wav"), "A B", "s1")]
    recs, sups, skipped = mc.manifests_from_files(items)
    assert {s.id: s.reason for s in skipped} == {"stereo": "wrong-channel-count",
                                                 "cd_rate": "wrong-sampling-rate"}
    assert "2 channels, expected 1" in skipped[0].detail
    assert "44100 Hz, expected 16000" in skipped[1].detail
    assert [r.id for r in recs] == ["ok"]
    # Resampling on purpose keeps the mono 44.1 kHz file (stage 2 resamples it); stereo is
    # never downmixed.
    recs, _, skipped = mc.manifests_from_files(items, audio=mc.AudioFormat(resample=True))
    assert {s.id: s.reason for s in skipped} == {"stereo": "wrong-channel-count"}
    assert sorted(r.id for r in recs) == ["cd_rate", "ok"]
    assert recs["cd_rate"].sampling_rate == 44100
    # Manifests made elsewhere are checked by the same rules.
    _, _, skipped = mc.check_manifests([Recording.from_file(tmp_path / "s.wav", recording_id="st")],
                                       [_supervision("st")])
    assert [(s.id, s.reason) for s in skipped] == [("st", "wrong-channel-count")]


def test_entry_point_takes_paths_and_reports_every_bad_file(tmp_path, caplog):
    """Paths, transcripts and speakers in; checked manifests, the report and the skipped list
    out; no file is opened by lhotse before it is checked, so nothing raises."""
    audio = tmp_path / "wavs"
    audio.mkdir()
    (audio / "noise.wav").write_bytes(b"RIFF....WAVEnot really\n" * 20)
    items = [mc.CorpusItem("u1", _wav(audio / "u1.wav"), "HELLO  WORLD", "spk1", gender="f"),
             mc.CorpusItem("u2", _wav(audio / "u2.wav", 1.5), "GOOD BYE", "spk2"),
             mc.CorpusItem("u3", _cut_in_half(_wav(audio / "u3.wav")), "CUT SHORT", "spk1"),
             mc.CorpusItem("u4", audio / "noise.wav", "NOT AUDIO", "spk2"),
             mc.CorpusItem("u5", audio / "absent.wav", "NO FILE", "spk2"),
             mc.CorpusItem("u6", _wav(audio / "u6.wav"), "", "spk1"),
             mc.CorpusItem("u1", _wav(audio / "u1b.wav"), "AGAIN", "spk1")]
    caplog.set_level(logging.INFO)
    done = mc.prepare_part(items, tmp_path / "manifests", "mine", "train",
                           skipped=[mc.Skipped("row9", "no-audio-path", "metadata row 9")])
    assert done.redone
    expected = {"u3": "truncated-audio", "u4": "unreadable-audio", "u5": "missing-audio",
                "u6": "empty-transcript", "u1": "duplicate-id", "row9": "no-audio-path"}
    assert {s.id: s.reason for s in done.skipped} == expected
    assert sorted(r.id for r in done.recordings) == ["u1", "u2"]
    sup = done.supervisions["u1"]
    assert (sup.text, sup.speaker, sup.gender, sup.duration) == ("HELLO WORLD", "spk1", "f", 2.0)
    assert done.supervisions["u2"].duration == 1.5
    report = (tmp_path / "manifests" / "mine_skipped_train.txt").read_text().splitlines()
    assert sorted(report) == sorted(f"{k} {v}" for k, v in expected.items())
    assert "skipped 6 of 7" in caplog.text
    recs = RecordingSet.from_file(tmp_path / "manifests" / "mine_recordings_train.jsonl.gz")
    assert sorted(recs.ids) == ["u1", "u2"]
    # Run again with the same inputs: read back, not redone.
    again = mc.prepare_part(items, tmp_path / "manifests", "mine", "train",
                            skipped=[mc.Skipped("row9", "no-audio-path", "metadata row 9")])
    assert not again.redone and len(again.recordings) == 2
    assert {s.id: s.reason for s in again.skipped} == expected


PREP = '''\
"""A new corpus' stage 1: a WAV tree and metadata.tsv (id, file, speaker, text).

Reads:  <corpus-dir>/metadata.tsv, <corpus-dir>/wavs/*.wav
Writes: <out-dir>/mine_{recordings,supervisions}_train.jsonl.gz, mine_skipped_train.txt
Example: python -m local.mine --corpus-dir corpus --out-dir data/manifests
"""
import argparse
import sys
from pathlib import Path

from local.manifest_checks import CorpusItem, Skipped, prepare_part
from steps.core.log import setup_logging


def prepare_mine(corpus_dir: Path, output_dir: Path) -> dict:
    items, bad_rows = [], []
    for number, row in enumerate((corpus_dir / "metadata.tsv").read_text().splitlines(), 1):
        fields = row.split("\\t")
        if len(fields) != 4:
            bad_rows.append(Skipped(f"row{number}", "bad-metadata-row", row))
            continue
        utt, file, speaker, text = fields
        items.append(CorpusItem(utt, corpus_dir / "wavs" / file, text.upper(), speaker))
    done = prepare_part(items, output_dir, "mine", "train", sources=[__file__], skipped=bad_rows)
    return {"train": {"recordings": done.recordings, "supervisions": done.supervisions}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus-dir", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    setup_logging()
    manifests = prepare_mine(args.corpus_dir, args.out_dir)
    return 0 if len(manifests["train"]["recordings"]) else 1


if __name__ == "__main__":
    sys.exit(main())
'''


def test_a_new_corpus_prep_in_a_few_lines_and_an_edit_of_it_redoes_stage_one(repo, tmp_path):
    import subprocess
    import sys

    corpus = tmp_path / "corpus"
    (corpus / "wavs").mkdir(parents=True)
    _wav(corpus / "wavs" / "a.wav")
    _cut_in_half(_wav(corpus / "wavs" / "b.wav"))
    _wav(corpus / "wavs" / "c.wav", rate=22050)
    (corpus / "metadata.tsv").write_text("a\ta.wav\tspk1\thello world\nb\tb.wav\tspk1\tcut short\n"
                                         "c\tc.wav\tspk2\tother rate\nno tabs here\n")
    prep = tmp_path / "myprep.py"
    prep.write_text(PREP)
    assert len(PREP.splitlines()) < 40
    out = tmp_path / "manifests"
    command = [sys.executable, str(prep), "--corpus-dir", str(corpus), "--out-dir", str(out)]
    env = {"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"}

    first = subprocess.run(command, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    report = sorted((out / "mine_skipped_train.txt").read_text().splitlines())
    assert report == ["b truncated-audio", "c wrong-sampling-rate", "row4 bad-metadata-row"]
    assert "skipped 3 of 4: bad-metadata-row 1, truncated-audio 1, wrong-sampling-rate 1" in first.stderr
    assert list(RecordingSet.from_file(out / "mine_recordings_train.jsonl.gz").ids) == ["a"]

    second = subprocess.run(command, capture_output=True, text=True, env=env)
    assert second.returncode == 0 and "mine train manifests: up to date" in second.stderr

    prep.write_text(PREP.replace('text.upper()', '" ".join(text.upper().split())'))
    third = subprocess.run(command, capture_output=True, text=True, env=env)
    assert third.returncode == 0, third.stderr
    assert "mine train manifests: (re)doing it: inputs changed: setting sources.myprep.py:" in third.stderr
