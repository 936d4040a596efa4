"""Drifting synthetic shards: the embedded default data.

Binary classification in ``dim`` dimensions. Shard ``k`` is a cloud centred at
``c_k = shift * (k - (K - 1) / 2) * e`` along a fixed "context" direction ``e`` (unit noise in
every direction but ``e``, where it is ``context_noise``); its two classes sit at
``c_k -/+ margin * n_k``, where the boundary normal ``n_k`` turns in a plane orthogonal to
``e`` by ``drift * 180`` degrees from the first shard to the last. A model that fits only the last
shards draws the wrong boundary through the first ones (with ``drift=1`` it flips their labels),
while one model that uses the context coordinate (an MLP) fits all shards jointly.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.generated import cached_folder, write_shard
from forgetbench.data.validation import open_splits, with_validation


def shard_sizes(num_shards: int, samples_per_shard: int, size_jitter: float, rng) -> np.ndarray:
    """Uneven shard sizes around ``samples_per_shard``, never a multiple of 8.

    Args:
        num_shards: Number of shards.
        samples_per_shard: Mean size.
        size_jitter: Sizes are drawn uniformly in ``mean * (1 -/+ size_jitter)``.
        rng: numpy Generator.
    """
    scale = rng.uniform(1 - size_jitter, 1 + size_jitter, size=num_shards)
    sizes = np.maximum(1, np.round(samples_per_shard * scale)).astype(np.int64)
    return sizes + (sizes % 8 == 0)


def _geometry(num_shards: int, dim: int, drift: float, shift: float, rng):
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 3)))
    context, u, v = basis.T
    steps = np.arange(num_shards) - (num_shards - 1) / 2
    centres = shift * steps[:, None] * context[None, :]
    angles = np.pi * drift * np.arange(num_shards) / max(1, num_shards - 1)
    normals = np.cos(angles)[:, None] * u[None, :] + np.sin(angles)[:, None] * v[None, :]
    return centres, normals, context


def _sample(
    n: int, centre, normal, context, margin: float, context_noise: float, rng
) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 2, size=n)
    sign = (2 * labels - 1)[:, None]
    noise = rng.normal(size=(n, len(centre)))
    noise += (context_noise - 1.0) * (noise @ context)[:, None] * context[None, :]
    x = centre + sign * margin * normal + noise
    return x.astype(np.float32), labels.astype(np.int64)


def write_synthetic(
    folder: Path,
    *,
    num_shards: int,
    dim: int,
    samples_per_shard: int,
    heldout_per_shard: int,
    drift: float,
    shift: float,
    margin: float,
    context_noise: float,
    size_jitter: float,
    seed: int,
) -> None:
    """Writes ``train/shard_KKK.npz`` and ``heldout/shard_KKK.npz`` under ``folder``."""
    rng = np.random.default_rng(seed)
    centres, normals, context = _geometry(num_shards, dim, drift, shift, rng)
    sizes = shard_sizes(num_shards, samples_per_shard, size_jitter, rng)
    for split, counts in (("train", sizes), ("heldout", [heldout_per_shard] * num_shards)):
        for k, n in enumerate(counts):
            x, y = _sample(int(n), centres[k], normals[k], context, margin, context_noise, rng)
            write_shard(folder / split / f"shard_{k:03d}.npz", x, y)


def build_synthetic(
    cache_dir: str | os.PathLike,
    *,
    name: str = "synthetic",
    num_shards: int = 5,
    dim: int = 20,
    samples_per_shard: int = 2000,
    heldout_per_shard: int = 500,
    drift: float = 1.0,
    shift: float = 1.0,
    margin: float = 2.0,
    context_noise: float = 0.1,
    size_jitter: float = 0.3,
    seed: int = 0,
    validation_fraction: float = 0.0,
) -> ShardDataset:
    """Builds (or reuses from the cache) the drifting synthetic shards.

    The files are cached under ``cache_dir`` in a folder named by a hash of the parameters
    (:func:`forgetbench.data.generated.cached_folder`).

    Args:
        cache_dir: Root folder of the data cache.
        name: Dataset name in results.
        num_shards: Number of shards K.
        dim: Feature dimension (at least 3).
        samples_per_shard: Mean training samples per shard (sizes vary by ``size_jitter``).
        heldout_per_shard: Held-out evaluation samples per shard.
        drift: Total turn of the decision boundary from first to last shard, in half turns.
        shift: Distance between neighbouring shard centres along the context direction.
        margin: Distance of each class mean from the shard centre (noise has unit variance).
        context_noise: Noise std along the context direction (small: shards are told apart).
        size_jitter: Relative spread of shard sizes.
        seed: Seed of the data (independent of the training seed).
        validation_fraction: Fraction of each training shard carved out as its validation
            split (seeded by ``seed``, stratified by class); 0: none.
    """
    if dim < 3:
        raise ValueError(f"data.dim: expected an integer >= 3. Received: {dim}")
    params = {
        "num_shards": num_shards,
        "dim": dim,
        "samples_per_shard": samples_per_shard,
        "heldout_per_shard": heldout_per_shard,
        "drift": drift,
        "shift": shift,
        "margin": margin,
        "context_noise": context_noise,
        "size_jitter": size_jitter,
        "seed": seed,
    }
    write = partial(write_synthetic, **params)
    params, write = with_validation(params, write, validation_fraction, seed)
    folder = cached_folder(cache_dir, "synthetic", params, write)
    return open_splits(folder, name, num_classes=2)
