"""bench_swap scoring: per-attribute preservation says which attribute a swap drags along."""

import numpy as np
import pytest

from tfattr.data import synthetic
from tfattr.metrics import oracle as oracle_lib
from tfattr.metrics import transfer

SIZE = 64


@pytest.fixture(scope="module")
def oracle():
    return oracle_lib.load_oracle()


def test_per_attribute_preservation_names_what_a_swap_changes(oracle):
    params_a, params_b = transfer.bench_pairs(60)
    la, lb = synthetic.labels(params_a), synthetic.labels(params_b)
    g, pose = synthetic.SCHEMA.names.index("Eyeglasses"), synthetic.SCHEMA.names.index("Pose")
    idx = la[:, g] != lb[:, g]  # the pairs score_swaps keeps, in its order
    pa = {k: v[idx] for k, v in params_a.items()}
    pb = {k: v[idx] for k, v in params_b.items()}
    # the true glasses swap that also takes B's pose, handed out batch by batch
    moved = transfer._signed(synthetic.render(synthetic.swap(pa, pb, ["Eyeglasses", "Pose"]), SIZE)["image"])
    served = [0]

    def swap_with_pose(xa, xb, names):
        out = moved[served[0]:served[0] + len(xa)]
        served[0] += len(xa)
        return out

    records = transfer.score_swaps(swap_with_pose, ["Eyeglasses"], SIZE, oracle, params_a, params_b)
    model, source = records[0], records[1]
    assert (model["method"], source["method"]) == ("model", "baseline_source")
    assert set(model["preserved"]) == set(synthetic.SCHEMA.names) - {"Eyeglasses"}
    # preservation is the mean over the other attributes (every one is scored on the same pairs)
    assert model["preservation"] == pytest.approx(np.mean(list(model["preserved"].values())))
    assert model["swap_accuracy"] > 0.9
    # Pose is kept only where A and B already shared it; everything else is kept
    shared_pose = np.mean(la[idx, pose] == lb[idx, pose])
    assert model["preserved"]["Pose"] == pytest.approx(shared_pose, abs=0.1) and shared_pose < 0.7
    assert min(v for k, v in model["preserved"].items() if k != "Pose") > 0.85
    assert min(source["preserved"].values()) > 0.85
    table = transfer.markdown_table(records + transfer.summarize(records))
    row = next(line for line in table.splitlines() if line.startswith("| Eyeglasses | "))
    assert row.count("|") == len(synthetic.SCHEMA.names) + 2 and " - " in row  # own column is "-"
