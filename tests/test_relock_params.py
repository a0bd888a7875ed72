"""grid/relock.py: a params key added at the value that keeps the old behaviour, or removed from where the lock held
it at a declared value, are the only params changes allowed."""

from __future__ import annotations

import pytest

from vaebench.grid.relock import RelockRefused, _unmoved

OLD = {"cmd": "old", "params": {"params.yaml": {"train": {"lr": 0.001, "heldout": 2000}, "model.hidden": 200}},
       "deps": [], "outs": [{"path": "models/vae-50", "md5": "x"}]}


def _new(**train) -> dict:
    return {**OLD, "cmd": "new", "params": {"params.yaml": {"train": {"lr": 0.001, "heldout": 2000, **train},
                                                            "model.hidden": 200}}}


def test_an_added_key_at_its_declared_value_is_recorded() -> None:
    _unmoved("train@vae-50", OLD, _new(monitor="test"), {"train.monitor": "test"})


def test_a_new_variant_beside_the_defs_a_variant_stage_lists_is_recorded_and_nothing_else() -> None:
    """A variant added to variants.defs (with its run) leaves the finished variant stages' models what they were:
    they list the whole `variants.defs`, so the new entry is the only change allowed there."""
    defs = {"beta4": {"beta": 4.0}, "iwae5": {"objective": "iwae", "k": 5}}
    old = {**OLD, "params": {"params.yaml": {"variants.defs": defs, "train": {"lr": 0.001}}}}
    added = {"variants.defs.long": {"epochs": 120}}
    new = {**old, "params": {"params.yaml": {"variants.defs": {**defs, "long": {"epochs": 120}}, "train": {"lr": 0.001}}}}
    _unmoved("train-variant@beta4-20-0", old, new, added)
    for changed in ({**defs, "long": {"epochs": 100}}, {**defs, "beta4": {"beta": 2.0}, "long": {"epochs": 120}}):
        moved = {**old, "params": {"params.yaml": {"variants.defs": changed, "train": {"lr": 0.001}}}}
        with pytest.raises(RelockRefused, match="parameters changed"):
            _unmoved("train-variant@beta4-20-0", old, moved, added)


@pytest.mark.parametrize("new, added", [
    (_new(monitor="test"), {}),  # not declared
    (_new(monitor="validation"), {"train.monitor": "test"}),  # another value: another behaviour
    (_new(monitor="test", lr=0.01), {"train.monitor": "test"}),  # and another change beside it
])
def test_any_other_params_change_is_refused(new, added) -> None:
    with pytest.raises(RelockRefused, match="parameters changed"):
        _unmoved("train@vae-50", OLD, new, added)


SEEDED = {**OLD, "params": {"params.yaml": {"train": {"lr": 0.001, "heldout": 2000, "seed": 0}, "model.hidden": 200}}}


def test_a_dropped_key_locked_at_its_declared_value_is_recorded() -> None:
    """train.seed left params.yaml once the seed matrix set it: the lock's train.seed = 0 may go."""
    _unmoved("train@vae-50-0", SEEDED, _new(), dropped={"train.seed": 0})


@pytest.mark.parametrize("new, dropped", [
    (_new(), {}),  # not declared
    (_new(), {"train.seed": 1}),  # the lock held another value: another model
    (_new(lr=0.01), {"train.seed": 0}),  # and another change beside it
    (_new(seed=0), {"train.seed": 0, "train.heldout": 2000}),  # declared dropped, yet still there (and seed kept)
])
def test_a_dropped_key_at_another_value_or_beside_another_change_is_refused(new, dropped) -> None:
    with pytest.raises(RelockRefused, match="parameters changed"):
        _unmoved("train@vae-50-0", SEEDED, new, dropped=dropped)


def test_a_dropped_key_must_leave_the_code_its_own_value(tmp_path) -> None:
    """Without train.seed in params.yaml the code takes its default 0: dropping `train.seed=3` would record runs of
    seed 3 as runs of seed 0; refused in one line, before DVC is asked anything."""
    import subprocess
    import sys
    from pathlib import Path

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 3\n")
    grid = [str(Path(sys.executable).parent / "vaebench-grid"), "relock", "--proven"]
    proc = subprocess.run([*grid, "--dropped-param", "train.seed=3"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "takes its default 0, not 3" in proc.stderr and len(proc.stderr.splitlines()) == 1
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 3\n  seed: 3\n")  # still in the file: the file's value
    proc = subprocess.run([*grid, "--dropped-param", "train.seed=3"], cwd=tmp_path, capture_output=True, text=True)
    assert "takes its default" not in proc.stderr
