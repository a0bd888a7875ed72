"""RMSprop and Adam with their state in buffers allocated once: no tensor allocated, no step tensor kept per step.

Why: torch's CPU RMSprop and Adam compute each parameter's denominator into a fresh tensor (up to 1.5 MB,
page-faulted anew) and count steps in a tensor per parameter, through its generic optimiser machinery; at
batch 256 the update took 3 ms of a 32 ms training step, at batch 64 a quarter of it (bench/bench.py's
profile). Here the state (`square_avg`, or `exp_avg` and `exp_avg_sq`) and the denominator's workspace are
views into flat buffers allocated once, the step count is a Python int, and a step is the same elementwise
operations as torch's single-tensor implementation, parameter by parameter (measured: one pass over the
whole flat buffer, after gathering the gradients with `cat`, was slower in a real step: the buffers
leave the cache between steps, and the gather is one more pass).

Late in training RMSprop's denominator is where the time went: a unit that stopped firing gets zero gradients,
so its `square_avg` decays by alpha = 0.99 a step into fp32's subnormal range (21 % of a CVAE's entries by
epoch 38 of 40, 29 % below 1e-31), and torch's CPU `sqrt` (MKL's vsSqrt) takes about 20 ns an element
there, 2.4x its normal time for values below ~1e-31, against ~0.5 ns for the rest: the update took 9.7 ms
of a step at epoch 38 and 2.5 ms with the floor below (bench/late_step.py). FlatRMSprop therefore takes the
root of max(v, floor), where `floor` is small enough that sqrt(floor) + eps rounds to eps in fp32, as
sqrt(v) + eps does for every v below it: the denominators, and so the weights, are the same bytes
(`sqrt_floor` checks it with torch's own kernels; tests/test_optim.py checks every fp32 value below the
floor).

On one thread (the grid's setting) FlatRMSprop hands each parameter's update to a fused kernel (run/fused.py):
the same operations in one pass over memory instead of six, checked against torch's ops on this machine
before it is used, so the bytes are the same with or without it.

The arithmetic is torch's own, operation for operation (torch/optim/rmsprop.py and adam.py,
`_single_tensor_*` with the defaults vaebench uses: no weight decay, momentum, centring or amsgrad): the
weights are the bytes torch's optimisers give (tests/test_optim.py checks it step by step). The state_dict
has torch's layout (per parameter: `step`, then `square_avg` or `exp_avg` and `exp_avg_sq`), so resumable
states read either way.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Iterable
from typing import Any

import torch

from vaebench.run import fused


# the rest of torch's param group, at the values these implement: a state_dict written here loads into torch's
# own optimiser too (which reads them), and one of torch's loads here
_TORCH_GROUP = {"weight_decay": 0, "maximize": False, "foreach": None, "capturable": False, "differentiable": False}


class FlatOptimizer(torch.optim.Optimizer):
    """One param group; per parameter, views into flat state buffers of all the parameters' length (n,),
    allocated once. Subclasses name their state buffers in STATE and update one parameter in `_update`."""

    STATE: tuple[str, ...] = ()

    def __init__(self, params: Iterable[torch.nn.Parameter], defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("this optimiser takes one parameter group")
        ps = self.param_groups[0]["params"]
        if len({(p.dtype, p.device) for p in ps}) != 1:
            raise ValueError("this optimiser needs every parameter on one device with one dtype")
        n = sum(p.numel() for p in ps)
        flat = {name: torch.zeros(n, dtype=ps[0].dtype, device=ps[0].device) for name in (*self.STATE, "work")}
        self.slots: list[dict[str, torch.Tensor]] = []  # per parameter: its view of each flat buffer, p's shape
        offset = 0
        for p in ps:
            self.slots.append({name: buf[offset:offset + p.numel()].view_as(p) for name, buf in flat.items()})
            offset += p.numel()
        self.steps = 0
        self._pending: set[int] | None = None  # during backward_step: the parameters not yet updated
        self._hooks: list[Any] = []

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        group = self.param_groups[0]
        self.steps += 1
        for p, slot in zip(group["params"], self.slots):
            if p.grad is None:
                raise RuntimeError("this optimiser steps on every parameter: one has no gradient")
            self._update(p, p.grad, slot, group)

    def backward_step(self, loss: torch.Tensor) -> None:
        """`zero_grad(set_to_none=True); loss.backward(); step()`, with each parameter updated as soon as autograd
        has its whole gradient (a post-accumulate-grad hook) and its gradient freed there: `.grad` is None after.

        Why: the update then reads a gradient that the backward pass has just written, while it is still in
        the cache, and the freed gradient's memory is the next layer's; measured at one thread side by side
        (bench/update_in_backward.py): 6-8 % of a batch-64 step, nothing measurable at 256 (0.990-1.032).
        The arithmetic is step()'s, parameter by parameter, so the weights are the same bytes
        (tests/test_optim.py checks every objective fit trains). A parameter that already holds a gradient is
        refused rather than summed into this one or dropped (a stray backward() between steps).
        It needs that nothing in the graph reads a parameter after its gradient is complete. Where something
        would (a detached view of a weight, saved by a node that runs later), the update's version bump makes
        autograd raise instead of differentiating with the new weights; like any error inside the backward
        pass, that leaves the parameters updated so far updated (fit then stops, and a rerun resumes from the
        last epoch's saved state). DReG's frozen decoder is built after the decoder's own pass, so autograd
        runs its backward first: it trains this way to step()'s bytes.
        """
        ps = self.param_groups[0]["params"]
        if any(p.grad is not None for p in ps):
            raise RuntimeError("backward_step takes one loss's gradient: a parameter already holds one "
                               "(call zero_grad(set_to_none=True) first)")
        if not self._hooks:
            # the hooks hold the optimiser weakly: a parameter keeps its hooks for life, and a strong reference
            # from them would keep every optimiser ever stepped this way (and its state buffers) alive
            me = weakref.ref(self)
            self._hooks = [p.register_post_accumulate_grad_hook(functools.partial(_update_in_backward, me, i))
                           for i, p in enumerate(ps)]
            weakref.finalize(self, _remove, self._hooks)
        self.steps += 1  # before any update: Adam's bias corrections read it
        self._pending = set(range(len(ps)))
        try:
            loss.backward()
        finally:
            left, self._pending = self._pending, None
        if left:
            raise RuntimeError("this optimiser steps on every parameter: one has no gradient")

    def _update(self, p: torch.Tensor, g: torch.Tensor, slot: dict[str, torch.Tensor], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """torch's layout: per parameter index, `step` (a float32 scalar) and each state buffer's view."""
        for p, slot in zip(self.param_groups[0]["params"], self.slots):
            self.state[p] = {"step": torch.tensor(float(self.steps)), **{name: slot[name] for name in self.STATE}}
        sd = super().state_dict()
        self.state.clear()  # the flat buffers are the state
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        ps = self.param_groups[0]["params"]
        steps = {int(self.state[p]["step"].item()) for p in ps if p in self.state}
        if len(steps) > 1:
            raise ValueError(f"the parameters' step counts differ ({sorted(steps)}): not a state this optimiser wrote")
        self.steps = steps.pop() if steps else 0
        for p, slot in zip(ps, self.slots):
            for name in self.STATE:
                if p in self.state:
                    slot[name].copy_(self.state[p][name])
                else:
                    slot[name].zero_()
        self.state.clear()


def _update_in_backward(ref: weakref.ref, i: int, p: torch.Tensor) -> None:
    """Parameter i's post-accumulate-grad hook: its update, while a backward_step of the optimiser `ref` runs."""
    opt = ref()
    if opt is None or opt._pending is None:
        return  # a backward() not started by backward_step: .grad stays, as torch leaves it
    with torch.no_grad():
        opt._update(p, p.grad, opt.slots[i], opt.param_groups[0])
    p.grad = None
    opt._pending.discard(i)


def _remove(hooks: list[Any]) -> None:
    for h in hooks:
        h.remove()


@functools.cache
def sqrt_floor(eps: float, dtype: torch.dtype = torch.float32) -> float:
    """The largest power of 4 `f` whose root is at most half of half an ulp of eps in `dtype`, so that
    sqrt(v) + eps == eps for every v in [0, f] (v <= f gives sqrt(v) <= sqrt(f), up to the root's own error of
    about an ulp, which the factor of 2 covers): taking the root of max(v, f) instead of v changes no sum
    sqrt(v) + eps. 0.0 (no floor) where f would be subnormal or eps is not a positive finite number, or where
    torch's kernels here do not give eps for the floor and the value below it (a sanity check; the margin is
    what makes it safe: tests/test_optim.py checks every fp32 value below the floor at eps = 1e-8).

    For eps = 1e-8 in fp32: half an ulp of eps is 2^-51, f = 2^-104 (4.9e-32, root 2^-52)."""
    e = torch.tensor(eps, dtype=dtype)
    if not (torch.isfinite(e) and e > 0):
        return 0.0
    half_ulp = (torch.nextafter(e, torch.tensor(float("inf"), dtype=dtype)) - e).item() / 2
    if half_ulp <= 0:
        return 0.0  # eps at the bottom of the subnormals
    root = 2.0 ** (math.floor(math.log2(half_ulp)) - 1)  # a power of 2 at most half of half an ulp: margin for rounding
    floor = torch.tensor(root * root, dtype=dtype)
    if floor.item() != root * root or floor.item() == 0 or floor < torch.finfo(dtype).tiny:
        return 0.0  # the floor itself would be subnormal or inexact: nothing to gain, nothing to prove
    probe = torch.stack([floor, torch.nextafter(floor, torch.zeros((), dtype=dtype)), torch.zeros((), dtype=dtype)])
    ok = torch.equal(torch.sqrt(probe).add_(eps), torch.full_like(probe, eps))
    return floor.item() if ok else 0.0


class FlatRMSprop(FlatOptimizer):
    """torch.optim.RMSprop(lr, alpha, eps), no momentum: v <- alpha v + (1 - alpha) g^2; w <- w - lr g / (sqrt(v) + eps)
    (Tieleman & Hinton 2012, lecture 6.5). The root is of max(v, floor) (`sqrt_floor`; the module's docstring
    says why): the same bytes, without the subnormal roots."""

    STATE = ("square_avg",)

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, **_TORCH_GROUP,
                                  "momentum": 0, "centered": False})

    @staticmethod
    def update_path() -> str:
        """How a step updates the weights in this process, for the console: the fused kernel or torch's ops."""
        k, why = fused.kernel()
        if k is not None and torch.get_num_threads() > 1:
            return f"torch ops ({torch.get_num_threads()} threads; the fused kernel runs on one)"
        return why

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # v >= 0 always (alpha v + (1 - alpha) g^2 from zeros); a negative one would make torch's root NaN and ours not
        if any((slot["square_avg"] < 0).any() for slot in self.slots):
            raise ValueError("a negative square_avg: not a state RMSprop writes")

    def _update(self, p: torch.Tensor, g: torch.Tensor, slot: dict[str, torch.Tensor], group: dict[str, Any]) -> None:
        v, d = slot["square_avg"], slot["work"]
        floor = sqrt_floor(group["eps"], v.dtype)  # read from the group each step: a loaded state may bring its own eps
        # the fused kernel runs on one thread: with more, torch's parallel passes are faster (measured at 2)
        k = fused.kernel()[0] if torch.get_num_threads() == 1 and fused.fits(p, v, g) else None
        if k is not None:
            k.step(p, v, g, group["alpha"], group["eps"], group["lr"], floor)  # one pass, the same bytes
        else:
            fused.torch_step(p, v, g, d, group["alpha"], group["eps"], group["lr"], floor)


class FlatAdam(FlatOptimizer):
    """torch.optim.Adam(lr, betas, eps) (Kingma & Ba 2015, Algorithm 1, with torch's placement of eps):
    m <- lerp(m, g, 1 - b1); v <- b2 v + (1 - b2) g^2; w <- w - lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""

    STATE = ("exp_avg", "exp_avg_sq")

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, **_TORCH_GROUP,
                                  "amsgrad": False, "fused": None, "decoupled_weight_decay": False})

    def _update(self, p: torch.Tensor, g: torch.Tensor, slot: dict[str, torch.Tensor], group: dict[str, Any]) -> None:
        (beta1, beta2), m, v, d = group["betas"], slot["exp_avg"], slot["exp_avg_sq"], slot["work"]
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        # torch reads t from a float32 step tensor (exact for t < 2^24); its bias corrections in Python floats
        bias_correction1, bias_correction2 = 1 - beta1 ** float(self.steps), 1 - beta2 ** float(self.steps)
        torch.sqrt(v, out=d).div_(bias_correction2 ** 0.5).add_(group["eps"])
        p.addcdiv_(m, d, value=-(group["lr"] / bias_correction1))
