"""grid/relock.py: a params key added at the value that keeps the old behaviour is the only params change allowed."""

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


@pytest.mark.parametrize("new, added", [
    (_new(monitor="test"), {}),  # not declared
    (_new(monitor="validation"), {"train.monitor": "test"}),  # another value: another behaviour
    (_new(monitor="test", lr=0.01), {"train.monitor": "test"}),  # and another change beside it
])
def test_any_other_params_change_is_refused(new, added) -> None:
    with pytest.raises(RelockRefused, match="parameters changed"):
        _unmoved("train@vae-50", OLD, new, added)
