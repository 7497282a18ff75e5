"""Bad-input checks (local/manifest_checks.py) on real files: every case is reported with
its reason, counted, written to the report, and the rest passes through."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import AudioSource, Recording, SupervisionSegment
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
