"""Weight interpolation between a checkpoint and its fine-tuned descendant (WiSE-FT)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bratseg.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from bratseg.errors import BratsInputError
from bratseg.models import build_model
from bratseg.training.weight_average import average_checkpoints

torch.set_num_threads(2)


def _save(path: Path, seed: int, provenance: dict, name: str = "nnunet") -> Path:
    torch.manual_seed(seed)
    model = build_model(name, preset="tiny").eval()
    return save_checkpoint(path, model, arch=name, config=model.config, provenance=provenance)


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A base checkpoint and one whose recorded init chain starts from it (as the trainer writes)."""
    base = _save(tmp_path / "base.pt", 1, {"train_cases": ["a", "b"], "val_cases": ["c"]})
    middle = _save(
        tmp_path / "middle.pt",
        2,
        {
            "train_cases": ["a", "d"],
            "val_cases": ["c"],
            "init_from": {"path": str(base), "sha256": file_sha256(base)},
        },
    )
    tuned = _save(
        tmp_path / "tuned.pt",
        3,
        {
            "train_cases": ["a", "d", "e"],
            "val_cases": ["c"],
            "init_from": {"path": str(middle), "sha256": file_sha256(middle)},
        },
    )
    return base, tuned


def test_average_is_the_linear_interpolation_and_records_both_parents(pair, tmp_path):
    base, tuned = pair
    out = average_checkpoints(base, tuned, 0.25, tmp_path / "avg.pt")
    a, b, avg = (load_checkpoint(p).model.state_dict() for p in (base, tuned, out))
    floats = [k for k, v in avg.items() if v.is_floating_point()]
    assert floats
    for key in floats:
        torch.testing.assert_close(avg[key], 0.75 * a[key] + 0.25 * b[key])
    prov = load_checkpoint(out).provenance
    assert prov["weight_average"]["weight_tuned"] == 0.25
    assert prov["weight_average"]["base"]["sha256"] == file_sha256(base)
    assert prov["weight_average"]["tuned"]["sha256"] == file_sha256(tuned)
    # every case either parent (or its init chain) trained on counts as seen
    assert {"a", "b", "d"} <= set(prov["pretrained_cases"])
    assert prov["train_cases"] == ["a", "d", "e"] and prov["val_cases"] == ["c"]


def test_the_ends_give_each_parent(pair, tmp_path):
    base, tuned = pair
    for weight, parent in ((0.0, base), (1.0, tuned)):
        out = average_checkpoints(base, tuned, weight, tmp_path / f"w{weight}.pt")
        want, got = load_checkpoint(parent).model, load_checkpoint(out).model
        x = torch.randn(1, want.config.in_channels, 32, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(got(x), want(x))


def test_refuses_unrelated_networks_a_bad_weight_and_other_architectures(pair, tmp_path):
    base, tuned = pair
    stranger = _save(tmp_path / "stranger.pt", 4, {"train_cases": ["x"]})
    with pytest.raises(BratsInputError, match="not fine-tuned from base.pt"):
        average_checkpoints(base, stranger, 0.5, tmp_path / "no.pt")
    with pytest.raises(BratsInputError, match=r"in \[0, 1\]"):
        average_checkpoints(base, tuned, 1.5, tmp_path / "no.pt")
    other = _save(tmp_path / "other.pt", 5, {"train_cases": ["x"]}, name="ds-unet")
    with pytest.raises(BratsInputError, match="architectures differ"):
        average_checkpoints(base, other, 0.5, tmp_path / "no.pt")
    assert not (tmp_path / "no.pt").exists()


def test_two_fine_tunes_of_one_ancestor_make_a_soup(pair, tmp_path):
    base, tuned = pair
    middle_init = load_checkpoint(tuned).provenance["init_from"]
    sibling = _save(
        tmp_path / "sibling.pt",
        6,
        {"train_cases": ["a", "f"], "val_cases": ["c"], "init_from": middle_init},
    )
    out = average_checkpoints(sibling, tuned, 0.5, tmp_path / "soup.pt")
    a, b, soup = (load_checkpoint(p).model.state_dict() for p in (sibling, tuned, out))
    for key in (k for k, v in soup.items() if v.is_floating_point()):
        torch.testing.assert_close(soup[key], 0.5 * a[key] + 0.5 * b[key])
    # a sibling's training is not pretraining: its cases count as trained on, and leave the
    # validation cases, so no held-out score includes a case either parent trained on
    prov = load_checkpoint(out).provenance
    assert {"a", "d", "f"} <= set(prov["pretrained_cases"])
    assert {"a", "d", "e", "f"} <= set(prov["train_cases"]) and prov["val_cases"] == ["c"]
    overlapping = _save(
        tmp_path / "overlapping.pt",
        8,
        {"train_cases": ["c"], "val_cases": ["a"], "init_from": middle_init},
    )
    prov = load_checkpoint(
        average_checkpoints(overlapping, tuned, 0.5, tmp_path / "soup2.pt")
    ).provenance
    assert "c" in prov["train_cases"] and prov["val_cases"] == []
    stranger = _save(tmp_path / "stranger.pt", 4, {"train_cases": ["x"]})
    with pytest.raises(BratsInputError, match="common ancestor"):
        average_checkpoints(stranger, tuned, 0.5, tmp_path / "no.pt")


def test_a_fold_step_added_to_another_member_is_held_out_where_the_three_never_trained(
    pair, tmp_path
):
    from bratseg.training.weight_average import held_out_member

    base, tuned = pair
    member = _save(tmp_path / "member.pt", 7, {"train_cases": ["m1"], "pretrained_cases": ["p"]})
    out = held_out_member(member, base, tuned, 0.5, tmp_path / "held.pt", ["c"], half=False)
    m, a, b, got = (load_checkpoint(p).model.state_dict() for p in (member, base, tuned, out))
    for key in (k for k, v in got.items() if v.is_floating_point()):
        torch.testing.assert_close(got[key], m[key] + 0.5 * (b[key] - a[key]))
    prov = load_checkpoint(out).provenance
    # a held-out check refuses whatever one of the three trained on
    assert set(prov["train_cases"]) == {"a", "d", "e", "m1"}
    assert {"a", "b", "d", "p", "m1"} <= set(prov["pretrained_cases"])
    assert prov["task_arithmetic"]["scale"] == 0.5
    assert prov["task_arithmetic"]["step_to"]["sha256"] == file_sha256(tuned)
    assert prov["val_cases"] == ["c"] and "init_from" not in prov  # it did not start from there
    # the difference must be a fine-tuning step of its start, and the scale positive
    with pytest.raises(BratsInputError, match="not fine-tuned from member.pt"):
        held_out_member(base, member, tuned, 0.5, tmp_path / "no.pt", ["c"])
    with pytest.raises(BratsInputError, match="> 0"):
        held_out_member(member, base, tuned, 0.0, tmp_path / "no.pt", ["c"])
    # only cases the fold run held out and no parent saw can be scored
    for bad in (["a"], ["m1"], ["p"], ["zz"]):
        with pytest.raises(BratsInputError, match="cannot be scored held out"):
            held_out_member(member, base, tuned, 0.5, tmp_path / "no.pt", bad)
    assert not (tmp_path / "no.pt").exists()


def test_a_split_without_the_cases_earlier_models_saw_keeps_every_other_fold() -> None:
    from bratseg.training.splits import CaseInfo, make_split, split_without

    infos = [CaseInfo(f"c{i}", "d", 5.0 + i) for i in range(10)]
    split = make_split(infos, "demo", n_folds=5, seed=0)
    seen = {"c0", "c1", "c2"}
    held = split_without(split, seen, "demo-unseen")
    assert held.name == "demo-unseen" and held.n_folds == 5
    assert sorted(c for f in held.folds for c in f) == [f"c{i}" for i in range(3, 10)]
    for before, after in zip(split.folds, held.folds):
        assert after == [c for c in before if c not in seen]
    assert set(held.cases) == {f"c{i}" for i in range(3, 10)}
