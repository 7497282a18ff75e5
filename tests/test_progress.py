"""Progress in logs (steps.core.log.progress): on a non-terminal, whole lines every few percent,
no carriage returns; a real program's log reads that way."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.test_fbank import make_corpus

SCRIPT = """
from steps.core.log import progress
for _ in progress(range(200), desc="items"):
    pass
bar = progress(total=10, initial=4, desc="epoch 2", leave=False)
for i in range(6):
    bar.update(1)
    bar.set_postfix(loss=f"{1 / (i + 1):.2f}")
bar.close()
for i in progress(range(100), desc="stopped"):
    if i == 12:
        break
"""


def test_lines_every_few_percent_in_a_pipe(repo):
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stderr
    lines = out.stderr.splitlines()
    items = [line for line in lines if line.startswith("items:")]
    assert [re.match(r"items: +(\d+)% (\d+)/200 \[", line).groups() for line in items] == \
        [(str(p), str(2 * p)) for p in range(5, 101, 5)]
    # A transient (leave=False) bar resumed at 4/10: every 20%, postfix shown.
    epoch = [line for line in lines if line.startswith("epoch 2:")]
    assert [line.split("[")[0].strip() for line in epoch] == \
        ["epoch 2:  60% 6/10", "epoch 2:  80% 8/10", "epoch 2: 100% 10/10"]
    assert epoch[-1].endswith("loss=0.20]")  # set after the update that printed it: the one before
    # A loop left early says how far it got.
    assert [line.split("[")[0].strip() for line in lines if line.startswith("stopped:")] == \
        ["stopped:   5% 5/100", "stopped:  10% 10/100", "stopped:  12% 12/100"]
    assert len(lines) == 20 + 3 + 3


def test_a_programs_log_has_no_carriage_returns(repo, tmp_path):
    manifests = make_corpus(tmp_path, {"dev": [(16000, 0.3)] * 40})
    log = tmp_path / "log" / "fbank.log"
    out = subprocess.run([str(repo / "utils" / "run.py"), str(log), sys.executable, "-m", "steps.compute_fbank",
                          "--manifest-dir", str(manifests), "--corpus", "toy", "--parts", "dev",
                          "--out-dir", str(tmp_path / "fbank")], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = log.read_text()
    assert "\r" not in text
    bars = [line for line in text.splitlines() if line.startswith("fbank toy dev")]
    assert len(bars) == 20 and bars[-1].startswith("fbank toy dev 1/1: 100% 40/40 [")
