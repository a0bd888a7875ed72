"""run/optim.py: RMSprop and Adam with preallocated state give torch's optimisers' bytes, step by step, and resume."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch

from vaebench.core.models import build_model
from vaebench.run import fused
from vaebench.run.optim import FlatAdam, FlatRMSprop, sqrt_floor
from vaebench.run.state import load_state, save_state

PAIRS = {
    "rmsprop": (torch.optim.RMSprop, FlatRMSprop, {"lr": 1e-3, "eps": 1e-8}),
    "adam": (torch.optim.Adam, FlatAdam, {"lr": 1e-3, "eps": 1e-4}),
}


@pytest.fixture
def use_path(monkeypatch, request):
    """use_path(p): RMSprop from here on through the fused kernel (p = "fused": one torch thread, as the kernel
    needs; skipped where this machine builds no kernel) or torch's ops; with the fused path the test checks at
    its end that the kernel did run."""
    threads, calls = torch.get_num_threads(), []

    def use(path: str) -> None:
        monkeypatch.setenv("VAEBENCH_FUSED", "1" if path == "fused" else "0")
        monkeypatch.setattr(fused, "kernel", functools.cache(fused.kernel.__wrapped__))
        if path != "fused":
            return
        if fused.kernel()[0] is None:
            pytest.skip(fused.kernel()[1])
        torch.set_num_threads(1)
        step = fused.Kernel.step
        monkeypatch.setattr(fused.Kernel, "step", lambda self, *a, **kw: calls.append(1) or step(self, *a, **kw))
        request.addfinalizer(lambda: torch.set_num_threads(threads))
        request.addfinalizer(lambda: calls or pytest.fail("the fused kernel never ran"))

    return use


def _denominators(flat: FlatRMSprop, before: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """sqrt(v) + eps of the step just taken, per parameter: torch's ops leave them in the work buffer; the fused
    kernel keeps them in L1, so its step is repeated on copies of the state before it (`before`: weights and
    square_avg), asking for them."""
    group = flat.param_groups[0]
    k = fused.kernel()[0]
    if k is None:
        return [slot["work"] for slot in flat.slots]
    out = []
    for (w, v), p in zip(before, group["params"]):
        d = torch.empty_like(w)
        k.step(w.clone(), v.clone(), p.grad, group["alpha"], group["eps"], group["lr"], sqrt_floor(group["eps"]),
               denominators=d)
        out.append(d)
    return out


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("cvae", 3, 40)  # every kind of parameter a run has: weights, biases, a label input


def _loss(model: torch.nn.Module, i: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(i)
    x = (torch.rand(32, 784, generator=g) < 0.3).float()
    y = torch.randint(0, 10, (32,), generator=g)
    mu, logvar = model.encode(x, y)
    logits = model.decode(mu + logvar.mul(0.5).exp() * torch.randn(mu.shape, generator=g), y)
    # a loss whose gradients differ in scale across parameters, so that the denominators matter
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, x) + 1e-3 * mu.square().sum()


def _steps(model: torch.nn.Module, opt: torch.optim.Optimizer, start: int, stop: int) -> list[list[torch.Tensor]]:
    snapshots = []
    for i in range(start, stop):
        opt.zero_grad(set_to_none=True)
        _loss(model, i).backward()
        opt.step()
        snapshots.append([p.detach().clone() for p in model.parameters()])
    return snapshots


@pytest.mark.parametrize(("name", "path"), [("rmsprop", "fused"), ("rmsprop", "torch ops"), ("adam", "torch ops")])
def test_each_step_gives_the_bytes_of_torchs_optimiser(name, path, use_path) -> None:
    use_path(path)
    ref_cls, flat_cls, kw = PAIRS[name]
    a = _model()
    b = copy.deepcopy(a)
    ref, flat = _steps(a, ref_cls(a.parameters(), **kw), 0, 25), _steps(b, flat_cls(b.parameters(), **kw), 0, 25)
    for step, (pa, pb) in enumerate(zip(ref, flat)):
        assert all(torch.equal(u, v) for u, v in zip(pa, pb)), f"{name}: weights differ after step {step + 1}"
    assert not torch.equal(ref[0][0], ref[-1][0])  # the weights did move


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_the_state_dict_has_torchs_layout_and_values(name) -> None:
    ref_cls, flat_cls, kw = PAIRS[name]
    a = _model()
    b = copy.deepcopy(a)
    oa, ob = ref_cls(a.parameters(), **kw), flat_cls(b.parameters(), **kw)
    _steps(a, oa, 0, 7)
    _steps(b, ob, 0, 7)
    sa, sb = oa.state_dict(), ob.state_dict()
    assert sa["state"].keys() == sb["state"].keys()
    for pid, st in sa["state"].items():
        assert st.keys() == sb["state"][pid].keys()
        for key, val in st.items():
            assert torch.equal(val, sb["state"][pid][key]), (pid, key)
            assert val.dtype == sb["state"][pid][key].dtype


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_a_saved_and_restored_state_continues_to_the_same_bytes(tmp_path: Path, name) -> None:
    """Through run/state.py, as a killed run resumes: 6 steps, save, a fresh model and optimiser load it, 6 more;
    and a state written by torch's own optimiser resumes in this one to the same bytes."""
    ref_cls, flat_cls, kw = PAIRS[name]
    whole = _model()
    _steps(whole, flat_cls(whole.parameters(), **kw), 0, 12)
    for writer in (flat_cls, ref_cls):
        first = _model()
        opt = writer(first.parameters(), **kw)
        _steps(first, opt, 0, 6)
        save_state(tmp_path / writer.__name__, first, opt, {"epoch": 1, "history": [], "fingerprint": {"x": 1}})
        second = build_model("cvae", 3, 40)
        opt2 = flat_cls(second.parameters(), **kw)
        assert load_state(tmp_path / writer.__name__, second, opt2, {"x": 1}) is not None
        assert opt2.steps == 6
        _steps(second, opt2, 6, 12)
        assert all(torch.equal(u, v) for u, v in zip(whole.parameters(), second.parameters())), writer.__name__


def test_a_parameter_without_a_gradient_is_refused() -> None:
    model = _model()
    opt = FlatRMSprop(model.parameters(), lr=1e-3)
    _loss(model, 0).backward()
    next(model.parameters()).grad = None
    with pytest.raises(RuntimeError, match="no gradient"):
        opt.step()


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_a_state_written_here_resumes_in_torchs_own_optimiser(name) -> None:
    ref_cls, flat_cls, kw = PAIRS[name]
    whole = _model()
    _steps(whole, ref_cls(whole.parameters(), **kw), 0, 10)
    first = _model()
    opt = flat_cls(first.parameters(), **kw)
    _steps(first, opt, 0, 5)
    torch_opt = ref_cls(first.parameters(), **kw)
    torch_opt.load_state_dict(opt.state_dict())
    _steps(first, torch_opt, 5, 10)
    assert all(torch.equal(u, v) for u, v in zip(whole.parameters(), first.parameters()))


def test_the_root_floor_changes_no_denominator_for_any_fp32_value_below_it() -> None:
    """Every fp32 value v in [0, floor] (193 million of them at eps = 1e-8, subnormals included): sqrt(v) + eps
    is eps, as sqrt(floor) + eps is, so FlatRMSprop's root of max(v, floor) gives torch's denominators exactly;
    above the floor max(v, floor) is v itself."""
    eps = 1e-8
    floor = sqrt_floor(eps)
    assert floor == 2.0 ** -104  # half an ulp of fp32(1e-8) is 2^-51; the floor's root is half of that
    last = torch.tensor(floor, dtype=torch.float32).view(torch.int32).item()
    chunk = 1 << 24
    eps32 = torch.tensor(eps, dtype=torch.float32)
    for start in range(0, last + 1, chunk):
        v = torch.arange(start, min(start + chunk, last + 1), dtype=torch.int32).view(torch.float32)
        d = torch.sqrt(v).add_(eps)
        assert torch.equal(d, eps32.expand_as(d)), f"sqrt(v) + eps != eps for some v in chunk {start:#x}"
    # and the floor is not far from the edge: two powers of 4 up, the sum moves
    assert torch.sqrt(torch.tensor(floor * 16, dtype=torch.float32)).add_(eps) != eps32


@pytest.mark.parametrize("path", ["fused", "torch ops"])
def test_a_state_decayed_into_subnormals_steps_to_torchs_bytes(path, use_path) -> None:
    """The regime the floor is for: a unit that stopped firing (zero gradients) whose square_avg sits at subnormal
    and sub-floor values, as after ~9,000 steps of decay by 0.99; 25 steps of FlatRMSprop and torch's RMSprop,
    through the fused kernel and through torch's ops."""
    use_path(path)
    a = _model()
    b = copy.deepcopy(a)
    ref, flat = torch.optim.RMSprop(a.parameters(), lr=1e-3, eps=1e-8), FlatRMSprop(b.parameters(), lr=1e-3, eps=1e-8)
    _steps(a, ref, 0, 1), _steps(b, flat, 0, 1)
    g = torch.Generator().manual_seed(7)
    state = ref.state_dict()
    for st in state["state"].values():
        sq = st["square_avg"]
        tiny = torch.exp2(-torch.randint(100, 150, sq.shape, generator=g).float())  # 2^-100 .. 2^-149 and 0
        sq.copy_(torch.where(torch.rand(sq.shape, generator=g) < 0.5, tiny, sq))
    ref.load_state_dict(state), flat.load_state_dict(state)
    assert sqrt_floor(1e-8) > 0
    # units that no longer fire (a third of the first layer's rows: no gradient, their state decays) and units
    # that barely do (a third: gradients ~1e-16 times the rest, whose square_avg stays under the floor, so their
    # updates lr g / d read d: with a wrong floor they differ)
    scale = torch.tensor([0.0, 1e-16, 1.0]).repeat(14)[:40, None]  # (40, 1): the first layer's 40 rows
    for model in (a, b):
        model.encoder[0].weight.register_hook(lambda grad: grad * scale)
    for step in range(1, 26):
        before = [(p.detach().clone(), slot["square_avg"].clone()) for p, slot in zip(b.parameters(), flat.slots)]
        (pa,), (pb,) = _steps(a, ref, step, step + 1), _steps(b, flat, step, step + 1)
        assert all(torch.equal(u, v) for u, v in zip(pa, pb)), f"weights differ after step {step + 1}"
        # the denominators themselves (a tiny gradient's update can vanish in the weight's rounding): the fused
        # kernel keeps them in L1, so its step is repeated on the state before it, asking for them
        for p, got in zip(a.parameters(), _denominators(flat, before)):
            want = ref.state[p]["square_avg"].sqrt().add_(1e-8)
            assert torch.equal(got, want), f"denominators differ after step {step + 1}"
    sq = flat.state_dict()["state"][0]["square_avg"]  # (40, 794)
    assert ((sq[0::3] > 0) & (sq[0::3] < torch.finfo(torch.float32).tiny)).any()  # subnormals were stepped through
    assert ((sq[1::3] > 0) & (sq[1::3] < sqrt_floor(1e-8))).any()  # and sub-floor entries with a gradient


def test_the_floor_is_zero_where_it_cannot_be_proven() -> None:
    assert sqrt_floor(0.0) == 0.0 and sqrt_floor(float("nan")) == 0.0 and sqrt_floor(-1e-8) == 0.0
    assert sqrt_floor(1e-12) == 0.0  # its floor would be subnormal
    assert sqrt_floor(5e-324, torch.float64) == 0.0 and sqrt_floor(1e-310, torch.float64) == 0.0
    assert sqrt_floor(1e-4) == 2.0 ** -78 and sqrt_floor(1e-8, torch.float64) > 0


@pytest.mark.parametrize("path", ["fused", "torch ops"])
def test_the_floor_follows_the_eps_of_a_loaded_state(path, use_path) -> None:
    """A state saved with eps 1e-8 loaded into an optimiser built with eps 1e-4: the loaded group's eps rules, and
    with it the floor (1e-4's floor, 2^-78, would turn sqrt(1e-25) + 1e-8 into 1e-8 and move the weights)."""
    a = _model()
    ref = torch.optim.RMSprop(a.parameters(), lr=1e-3, eps=1e-8)
    _steps(a, ref, 0, 1)
    b = copy.deepcopy(a)
    flat = FlatRMSprop(b.parameters(), lr=1e-3, eps=1e-4)
    state = ref.state_dict()
    for st in state["state"].values():
        st["square_avg"].fill_(1e-25)
    ref.load_state_dict(state), flat.load_state_dict(state)
    use_path(path)
    before = [(p.detach().clone(), slot["square_avg"].clone()) for p, slot in zip(b.parameters(), flat.slots)]
    (pa,), (pb,) = _steps(a, ref, 1, 2), _steps(b, flat, 1, 2)
    assert all(torch.equal(u, v) for u, v in zip(pa, pb))
    for p, got in zip(a.parameters(), _denominators(flat, before)):  # (zero-gradient entries' updates are 0 either way)
        assert torch.equal(got, ref.state[p]["square_avg"].sqrt().add_(1e-8))


def test_a_state_with_a_negative_square_avg_is_refused() -> None:
    model = _model()
    ref = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    _steps(model, ref, 0, 1)
    state = ref.state_dict()
    state["state"][0]["square_avg"][0, 0] = -1e-40
    with pytest.raises(ValueError, match="negative square_avg"):
        FlatRMSprop(model.parameters(), lr=1e-3).load_state_dict(state)


def test_the_fused_kernel_builds_and_gives_torchs_bytes_on_this_machine() -> None:
    """Where a C compiler, AVX2 with FMA and torch's MKL are present (CI's machines, this project's), the fused
    RMSprop kernel must be in use: its fallback keeps the bytes, so only this test notices a kernel that stopped
    building or stopped agreeing with torch's ops (its probe compares every bit)."""
    import shutil

    cpu = open("/proc/cpuinfo").read() if Path("/proc/cpuinfo").exists() else ""
    if not (shutil.which("cc") or shutil.which("gcc")) or not torch.backends.mkl.is_available() \
            or " avx2" not in cpu or " fma" not in cpu:
        pytest.skip("no C compiler, MKL or AVX2 with FMA here: torch's ops are the path")
    k, why = fused.kernel.__wrapped__()
    assert k is not None, why
    assert why == "fused kernel"


@pytest.mark.parametrize("path", ["fused", "torch ops"])
def test_a_step_counts_as_an_in_place_change_of_the_weights(path, use_path) -> None:
    """The kernel writes through pointers; it still bumps the weights' version as torch's in-place ops do, so autograd
    refuses a graph that saved the weights before the step instead of differentiating it with the new ones."""
    use_path(path)
    p = torch.nn.Parameter(torch.randn(64))
    opt = FlatRMSprop([p], lr=1e-3)
    stale = (p * p).sum()  # saves p
    (p * 2.0).sum().backward()
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        stale.backward()


def _training_steps(model_name: str, variant, optimizer: str, in_backward: bool, steps: int = 4) -> list[torch.Tensor]:
    """The weights after `steps` steps of fit's objective for `variant`, stepped either way."""
    from vaebench.core.objectives import training_bound
    from vaebench.run.data import flip_bits
    from vaebench.run.fit import make_optimizer
    from vaebench.streams import Draws, Stream

    gen = torch.Generator().manual_seed(1)
    x, y = (torch.rand(48, 784, generator=gen) < 0.3).float(), torch.randint(0, 10, (48,), generator=gen)
    torch.manual_seed(0)
    model = build_model(model_name, 3, 40, variant=variant)
    opt, g = make_optimizer(optimizer, model.parameters(), 1e-3), Draws(Stream.EPOCH, 0, 0)
    flips = Draws(Stream.CORRUPT, 0, 0)
    for _ in range(steps):
        x_in = flip_bits(x, variant.noise, flips) if variant.noise else x  # the denoising VAE's encoder input
        loss = -training_bound(model, variant, x_in, x, y if model_name == "cvae" else None, g, torch.device("cpu"),
                               0.5).mean()
        if in_backward:
            opt.backward_step(loss)
            assert all(p.grad is None for p in model.parameters())  # each gradient freed where it was used
        else:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
@pytest.mark.parametrize("case", ["vae", "cvae", "beta", "iwae", "dreg", "categorical", "free bits", "denoising"])
def test_updating_inside_the_backward_pass_gives_steps_bytes_for_every_objective(case, optimizer, use_path) -> None:
    """backward_step updates each weight as soon as its gradient is complete, during the backward pass: the same
    bytes as backward() then step(), for each objective fit trains (DReG's second decoder pass reads detached
    decoder weights: had it run after their update, autograd would have raised)."""
    import dataclasses

    from vaebench.core.variants import PLAIN

    use_path("fused" if optimizer == "rmsprop" else "torch ops")
    variant = {"beta": dataclasses.replace(PLAIN, beta=4.0), "iwae": dataclasses.replace(PLAIN, objective="iwae", k=5),
               "dreg": dataclasses.replace(PLAIN, objective="dreg", k=5),
               "categorical": dataclasses.replace(PLAIN, latent="categorical", classes=4),
               "free bits": dataclasses.replace(PLAIN, free_bits=0.5),
               "denoising": dataclasses.replace(PLAIN, noise=0.2)}.get(case, PLAIN)
    name = "cvae" if case == "cvae" else "vae"
    before = _training_steps(name, variant, optimizer, in_backward=False, steps=0)
    stepped, in_backward = (_training_steps(name, variant, optimizer, flag) for flag in (False, True))
    assert all(torch.equal(a, b) for a, b in zip(stepped, in_backward))
    assert not all(torch.equal(a, b) for a, b in zip(before, in_backward))  # the weights did move


@pytest.mark.parametrize("path", ["fused", "torch ops"])
def test_an_update_inside_the_backward_pass_is_refused_where_the_graph_still_needs_the_weight(path, use_path) -> None:
    """A node that saved a detached view of a weight and runs after the weight's gradient is complete: the update's
    version bump makes autograd raise instead of differentiating with the updated weight."""
    use_path(path)
    w = torch.nn.Parameter(torch.randn(8, 8))
    opt = FlatRMSprop([w], lr=1e-3)
    u = torch.randn(4, 8, requires_grad=True)
    late = (u @ w.detach()).sum()  # built first, so autograd runs its backward (which reads w) after w's gradient
    early = (torch.randn(4, 8) @ w).sum()  # w's whole gradient
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        opt.backward_step(early + late)


def test_a_parameter_without_a_gradient_is_refused_inside_the_backward_pass_too() -> None:
    model = _model()
    opt = FlatRMSprop(model.parameters(), lr=1e-3)
    with pytest.raises(RuntimeError, match="no gradient"):
        opt.backward_step(model.decoder[-1].bias.sum())


def test_a_gradient_left_from_an_earlier_backward_is_refused_not_summed() -> None:
    model = _model()
    opt = FlatRMSprop(model.parameters(), lr=1e-3)
    _loss(model, 0).backward()  # a stray backward: every parameter holds a gradient
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RuntimeError, match="already holds one"):
        opt.backward_step(_loss(model, 1))
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters())) and opt.steps == 0


def test_an_error_inside_the_backward_pass_leaves_the_optimiser_ready_for_the_next_step() -> None:
    class Fails(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.clone()

        @staticmethod
        def backward(ctx, grad):
            raise ValueError("a node that fails")

    model = _model()
    opt = FlatRMSprop(model.parameters(), lr=1e-3)
    mu, _ = model.encode(torch.rand(8, 784), torch.arange(8))
    with pytest.raises(ValueError, match="a node that fails"):
        opt.backward_step(Fails.apply(mu).sum())  # fails before any parameter's gradient is complete
    assert opt._pending is None and all(p.grad is None for p in model.parameters())
    opt.backward_step(_loss(model, 0))  # the next step runs, and updates every parameter
    assert opt.steps == 2 and all(p.grad is None for p in model.parameters())


def test_an_optimiser_stepped_inside_the_backward_pass_is_freed_with_its_model() -> None:
    """The hooks stay on the parameters; they must not keep the optimiser (and its state buffers) alive, nor
    act for an optimiser that is gone."""
    import gc
    import weakref

    model = _model()
    opt = FlatRMSprop(model.parameters(), lr=1e-3)
    opt.backward_step(_loss(model, 0))
    gone = weakref.ref(opt)
    del opt
    gc.collect()
    assert gone() is None
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())  # removed with it
    other = FlatRMSprop(model.parameters(), lr=1e-3)  # a second optimiser on the same weights steps alone
    weights = [p.detach().clone() for p in model.parameters()]
    _loss(model, 1).backward()
    other.step()
    reference = _model()
    for r, w in zip(reference.parameters(), weights):
        r.data.copy_(w)
    ref_opt = FlatRMSprop(reference.parameters(), lr=1e-3)
    _loss(reference, 1).backward()
    ref_opt.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))
