"""The DMoE analyses and the encoder comparison's measurements: expert usage per phone
(counts, joint combinations, gate entropy, the heatmap PNG), the senone -> phone map,
monophone frame accuracy, the bootstrap WER interval."""

from __future__ import annotations

import math

import matplotlib.image
import numpy as np
import pytest
import torch

from steps.am.comparison import WerInterval, bootstrap_wer, frame_accuracies, render_summary
from steps.am.cut_store import CutStore
from steps.am.dmoe import DmoeConfig, MoeLayer, moe_layers
from steps.am.expert_usage import collect_usage, plot_usage, senone_phone_classes, summary_lines
from steps.am.model import AcousticModel, ModelConfig
from steps.am.targets import senone_targets
from steps.toy.am_data import make_synthetic_am_data
from steps.tree.decision_tree import Node, Question, Root, Tree


def toy_tree() -> Tree:
    """SIL -> senone 0; A -> 1 or 3 (by left context); B -> 2."""
    nodes = [Node(senone=0), Node(key="L", question=0, yes=2, no=3), Node(senone=1), Node(senone=3),
             Node(senone=2)]
    return Tree(phones=["<eps>", "SIL", "A", "B"], silence=1,
                questions=[Question("left_b", "phone", (3,))],
                roots=[Root((1,), (0, 1, 2), 0), Root((2,), (0, 1, 2), 1), Root((3,), (0, 1, 2), 4)],
                nodes=nodes, num_senones=4)


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    data = make_synthetic_am_data(tmp_path_factory.mktemp("usage"), num_cuts=6, num_dev=5, num_senones=4,
                                  num_subwords=10, top_k=2, mean_words=2.0)
    store, _ = CutStore.load_or_build(data["dev"], None, (), required=())
    return store


def labels(store) -> np.ndarray:
    """The senone label of every output frame (subsampling 3), as the batches carry them."""
    out = []
    for cut in store.cuts:
        a = store.arrays(cut)
        out.append(senone_targets([a.senone], [a.num_frames], 3)[0].numpy())
    return np.concatenate(out)


def model(num_experts=(3, 2)):
    torch.manual_seed(0)
    config = ModelConfig(encoder="dmoe", num_layers=3, hidden_dim=24, bottleneck_dim=8, prefinal_dim=8,
                         dropout=0.0, dmoe=DmoeConfig(num_moe_layers=2, num_experts=num_experts[0], expert_dim=4))
    m = AcousticModel(80, 4, config)
    if num_experts[1] != num_experts[0]:  # a second layer with another expert count
        m.layers[2] = MoeLayer(24, DmoeConfig(num_experts=num_experts[1], expert_dim=4), 3, 0.66,
                               torch.nn.Identity())
    return m


def test_senone_phone_classes():
    of_senone, names = senone_phone_classes(toy_tree())
    assert names == ["SIL", "A", "B"]
    assert of_senone.tolist() == [0, 1, 2, 1]


def test_usage_counts_entropy_and_heatmap(dev, tmp_path):
    m = model()
    usage = collect_usage(m, dev, toy_tree(), 30, progress=False)
    assert usage.frames == int((labels(dev) >= 0).sum()) > 0
    assert usage.num_experts == [3, 2] and usage.joint.shape == (3, 6)
    for i, counts in enumerate(usage.counts):
        assert counts.sum() == usage.frames
        # each layer's counts are the joint's marginals
        marginal = usage.joint.reshape(3, 3, 2).sum(axis=2 if i == 0 else 1)
        np.testing.assert_array_equal(counts, marginal)
        assert 0 <= usage.mean_entropy(i) <= math.log(usage.num_experts[i]) + 1e-9
        assert usage.mean_entropy(i) <= usage.entropy_of_mean_gate(i) + 1e-9  # concavity
    assert 1 <= usage.combinations_in_use() <= 6
    png = plot_usage(usage, tmp_path / "experts.png")
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    lines = summary_lines(usage)
    assert "of 6 (3x2)" in lines[1]


def test_forced_gates_give_one_combination_and_zero_entropy(dev):
    m = model()
    first, second = moe_layers(m)
    first.gate.bias.data = torch.tensor([0.0, 0.0, 60.0])
    second.gate.bias.data = torch.tensor([60.0, 0.0])
    usage = collect_usage(m, dev, toy_tree(), 30, progress=False)
    assert usage.combinations_in_use() == 1
    assert usage.joint[:, 2 * 2 + 0].sum() == usage.frames  # combination 2-0
    assert usage.combination_names()[4] == "2-0"
    assert usage.mean_entropy(0) < 1e-6 and usage.entropy_of_mean_gate(1) < 1e-6


def test_monophone_accuracy_counts_senones_of_one_phone_as_right(dev):
    m = model()
    acc = frame_accuracies(m, dev, toy_tree(), 30)
    assert acc["frames"] > 0 and 0 <= acc["senone"] <= acc["phone"] <= 1
    # a model that always says senone 3 is right, at the phone level, on every A frame
    with torch.no_grad():
        m.main_head.output.bias.data = torch.tensor([0.0, 0.0, 0.0, 1e4])
    acc = frame_accuracies(m, dev, toy_tree(), 30)
    ali = labels(dev)
    assert acc["senone"] == pytest.approx(np.mean(ali == 3))
    assert acc["phone"] == pytest.approx(np.mean((ali == 1) | (ali == 3)))


def test_bootstrap_wer(tmp_path):
    refs = [f"u{i} A B C D" for i in range(40)]
    hyps = [f"u{i} A B C D" if i % 4 else f"u{i} A X C" for i in range(40)]  # 10 utts, 2 errors each
    (tmp_path / "text").write_text("\n".join(refs) + "\n")
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n")
    w = bootstrap_wer(tmp_path)
    assert (w.errors, w.words, w.utterances) == (20, 160, 40)
    assert w.wer == pytest.approx(12.5)
    assert 4 < w.low < 12.5 < w.high < 22
    assert bootstrap_wer(tmp_path) == w  # fixed seed


def test_summary_over_seeds():
    def row(name, acc, dev):
        return {"name": name, "objective": "baseline", "encoder": "tdnnf", "params": {"test_time": 1000},
                "acc": {"senone": acc, "phone": acc + 0.1}, "dev": WerInterval(dev, 0, 0, 0, 0, 0),
                "test": None, "cpu_step": 0.02}

    text = render_summary([row("am_x_s1", 0.40, 30.0), row("am_x_s2", 0.50, 40.0), row("am_y_s1", 0.3, 20.0)])
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| am_x | baseline | tdnnf | 2 | 1,000 | 45.00 ± 7.07 | 55.00 ± 7.07 | 35.00 ± 7.07 | missing |")
    assert "| am_y | baseline | tdnnf | 1 |" in lines[3] and "20.00 ± 0.00" in lines[3]
