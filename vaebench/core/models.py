"""The thesis's models: MLP encoder and decoder; the VAE, its label-conditional twin, and its categorical-latent variant.

Models return distribution parameters (q's mean and log-variance, or its class logits for a
categorical latent; the decoder's Bernoulli logits); the bounds in bounds.py turn them into numbers.
A CVAE is a VAE whose encoder sees [x, onehot(y)] and whose decoder sees [z, onehot(y)]; the prior
stays N(0, I). A categorical VAE (`classes` = K > 0) has zdim = N variables of K classes, a uniform
prior, and a decoder that reads the flattened one-hot (or relaxed) state, N * K features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vaebench.config import ACTIVATIONS, MODELS
from vaebench.core.variants import PLAIN, Variant

PIXELS = 784
N_LABELS = 10


def _unit(activation: str) -> nn.Module:
    if activation == "relu":
        return nn.ReLU(inplace=True)  # in place: one pass over each activation instead of a copy
    if activation == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {activation!r} (allowed: {', '.join(ACTIVATIONS)})")


def mlp(n_in: int, hidden: int, n_out: int, activation: str = "relu") -> nn.Sequential:
    """Three layers, two hidden units of `activation`: n_in -> hidden -> hidden -> n_out, Xavier-initialised.

    Xavier (Glorot & Bengio 2010) keeps activation variance roughly constant across layers,
    which the thesis used against vanishing gradients (it was derived for tanh, which Burda et al.
    2016 use with the same uniform init); biases start at zero.
    """
    net = nn.Sequential(
        nn.Linear(n_in, hidden), _unit(activation),
        nn.Linear(hidden, hidden), _unit(activation),
        nn.Linear(hidden, n_out),
    )
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return net


class VAE(nn.Module):
    """q(z|x) = N(mu, diag sigma^2), p(z) = N(0, I), p(x|z) = Bernoulli(sigmoid(logits)).

    With `n_labels` > 0 it is the CVAE: q(z|x, y) and p(x|z, y), y given as a one-hot vector. With
    `classes` = K > 0 the latent is categorical: q(z|x) = prod_n Cat(softmax(logits_n)) over zdim = N
    variables (`encode_logits`, (b, N, K)), p(z) uniform over the K^N states, the decoder fed N * K
    features (`width`).
    """

    def __init__(self, zdim: int, hidden: int = 500, n_labels: int = 0, activation: str = "relu",
                 classes: int = 0) -> None:
        super().__init__()
        self.zdim, self.hidden, self.n_labels, self.activation = zdim, hidden, n_labels, activation
        self.classes = classes  # 0: zdim Gaussian dimensions; K >= 2: zdim categorical variables of K classes
        self.encoder = mlp(PIXELS + n_labels, hidden, zdim * classes if classes else 2 * zdim, activation)
        self.decoder = mlp(self.width + n_labels, hidden, PIXELS, activation)

    @property
    def categorical(self) -> bool:
        return self.classes > 0

    @property
    def width(self) -> int:
        """Features of a latent state as the decoder sees it: D, or N * K for a flattened one-hot state."""
        return self.zdim * self.classes if self.categorical else self.zdim

    @property
    def conditional(self) -> bool:
        return self.n_labels > 0

    def _with_label(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Append onehot(y) to the last dimension of h (..., n) -> (..., n + 10); y is (...) of ints."""
        if not self.conditional:
            return h
        if y is None:
            raise ValueError("a CVAE needs the label y")
        onehot = F.one_hot(y, self.n_labels).to(h.dtype)
        return torch.cat([h, onehot], -1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 784) images [and (B,) labels] -> q's mean and log-variance, each (B, D) (Gaussian latents)."""
        mu, logvar = self.encoder(self._with_label(x, y)).chunk(2, -1)
        return mu, logvar

    def encode_logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 784) images [and labels] -> q's logits (B, N, K) (categorical latents)."""
        return self.encoder(self._with_label(x, y)).unflatten(-1, (self.zdim, self.classes))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(..., D) latents, or (..., N * K) flattened categorical states, [and labels] -> (..., 784) Bernoulli logits.

        Labels are aligned on the leading dimensions: (B,) labels serve (B, S, D) latents.
        """
        if y is not None:
            while y.dim() < z.dim() - 1:
                y = y.unsqueeze(-1)
            y = y.expand(z.shape[:-1])
        return self.decoder(self._with_label(z, y))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(x, y)


def build_model(model: str, zdim: int, hidden: int, activation: str = "relu", variant: Variant | None = None) -> VAE:
    """`vae`, `cvae`, or a named variant of the VAE with its pieces in `variant` (only the latent family shapes the net)."""
    if variant is None:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r} (allowed: {', '.join(MODELS)}, or a variant with its pieces)")
        variant = PLAIN
    classes = variant.classes if variant.latent == "categorical" else 0
    return VAE(zdim, hidden, n_labels=N_LABELS if model == "cvae" else 0, activation=activation, classes=classes)
