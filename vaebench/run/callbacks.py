"""What happens around fit()'s loop, as callbacks: resumption, the time estimate, the curves, the console.

fit() calls each hook of each callback in order (`end` and `close` in reverse order): `start` once before the
first epoch, `epoch_start`, `steps_start` and `steps_end` around the gradient steps, `epoch_end` with the
epoch's row, `end` after the checkpoint is written, and `close` always, after `end` or after an exception
(a crash, a kill) has stopped the run. None of them draws a random
number or touches the model's training: a run's bytes are the same with any set of callbacks (the bench adds
its own, to time the phases of an epoch).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from vaebench import io as vio
from vaebench.run.state import load_state, save_state

if TYPE_CHECKING:
    from vaebench.run.fit import Run


class Callback:
    """The hooks of fit(); each does nothing unless overridden."""

    def start(self, run: Run) -> None: ...
    def epoch_start(self, run: Run, epoch: int) -> None: ...
    def steps_start(self, run: Run, epoch: int) -> None: ...
    def steps_end(self, run: Run, epoch: int) -> None: ...
    def epoch_end(self, run: Run, epoch: int, row: dict[str, float]) -> None: ...
    def end(self, run: Run) -> None: ...
    def close(self, run: Run) -> None: ...


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


class Resumable(Callback):
    """Continue from `<out>.partial/` if it holds this configuration's state; save it after every epoch;
    remove it once the checkpoint is written."""

    def start(self, run: Run) -> None:
        for d in (run.out_dir, run.partial):  # a run killed mid-write may have left temporaries behind
            vio.remove_stale_temporaries(d)
        info = load_state(run.partial, run.model, run.opt, run.fingerprint)
        if info:
            run.start, run.history = info["epoch"], info["history"]
            run.log(f"resuming {run.label} after epoch {run.start} from {run.partial}")

    def epoch_end(self, run: Run, epoch: int, row: dict[str, float]) -> None:
        save_state(run.partial, run.model, run.opt,
                   {"epoch": epoch + 1, "history": run.history, "fingerprint": run.fingerprint})

    def end(self, run: Run) -> None:
        shutil.rmtree(run.partial, ignore_errors=True)


def _update_path(opt: object) -> str:
    """'; RMSprop: fused kernel' (or torch ops, and why), for an optimiser that has two paths; else ''."""
    path = getattr(opt, "update_path", None)
    return f"; {type(opt).__name__.removeprefix('Flat')}: {path()}" if path is not None else ""


class TimeEstimate(Callback):
    """Say before the first epoch which epochs will run and roughly how long (one step timed on a copy)."""

    def __init__(self, seconds_per_step: Callable[[Run], float]) -> None:
        self.seconds_per_step = seconds_per_step

    def start(self, run: Run) -> None:
        if run.start >= run.epochs:
            return
        t_step = self.seconds_per_step(run)
        run.log(f"training {run.label}: epochs {run.start + 1}-{run.epochs} of {run.epochs}, {run.steps} steps of "
                f"{run.batch_size} images each; about {duration(t_step * run.steps * (run.epochs - run.start))} "
                f"(a step timed at {t_step * 1000:.0f} ms{_update_path(run.opt)})")


class LiveCurves(Callback):
    """The curves through dvclive, staged in `<out>.partial/live` (dvclive appends in place) and moved to
    `live_dir` at the end, so that they appear complete or not at all."""

    def __init__(self, live_dir: str | Path) -> None:
        self.live_dir = Path(live_dir)
        self.live: Any = None

    def start(self, run: Run) -> None:
        from dvclive import Live  # imported lazily: pulls in much of dvc

        self.staged = run.partial / "live"
        shutil.rmtree(self.staged, ignore_errors=True)
        self.live = Live(str(self.staged), dvcyaml=False, save_dvc_exp=False, report=None)
        for row in run.history:  # replay the finished epochs, so a resumed run logs what an unbroken one does
            self._log(row)

    def epoch_end(self, run: Run, epoch: int, row: dict[str, float]) -> None:
        self._log(row)

    def end(self, run: Run) -> None:
        self.live.end()
        shutil.rmtree(self.live_dir, ignore_errors=True)
        self.live_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self.staged, self.live_dir)  # a rename on one filesystem, a copy across two

    def _log(self, row: dict[str, float]) -> None:
        # no timestamps: the logs must be byte-identical across identical runs
        self.live.log_metric("train/elbo", row["train_elbo"])
        self.live.log_metric("heldout/elbo", row["heldout_elbo"])
        self.live.next_step()


class Console(Callback):
    """A progress bar over the epochs, or (quiet) one line per epoch with the time left."""

    def __init__(self, progress: bool) -> None:
        self.progress = progress

    bar: Any = None

    def start(self, run: Run) -> None:
        self.bar = tqdm(desc=run.label, unit="epoch", initial=run.start, total=run.epochs,
                        disable=not self.progress, leave=False)
        self.t0 = time.perf_counter()

    def epoch_end(self, run: Run, epoch: int, row: dict[str, float]) -> None:
        self.bar.update(1)
        self.bar.set_postfix(train=f"{row['train_elbo']:.2f}", heldout=f"{row['heldout_elbo']:.2f}")
        if not self.progress:
            left = (time.perf_counter() - self.t0) / (epoch + 1 - run.start) * (run.epochs - epoch - 1)
            run.log(f"{run.label} epoch {epoch + 1}/{run.epochs}: "
                    f"train {run.objective_name} {row['train_elbo']:.2f}, held-out ELBO {row['heldout_elbo']:.2f}"
                    + (f" (about {duration(left)} left)" if epoch + 1 < run.epochs else ""))

    def close(self, run: Run) -> None:
        if self.bar is not None:
            self.bar.close()
