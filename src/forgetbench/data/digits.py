"""scikit-learn's handwritten digits as split, permuted and rotated shards.

The 1797 digits ship with scikit-learn (nothing is downloaded). Features are the 8x8 images,
row-major, as 64 values scaled to [0, 1]; labels are the digits 0-9 (``num_classes`` is 10 for
every variant, so one head covers all shards). With ``image_shape=True`` the features keep their
``(8, 8)`` shape (the same values), for convolutional models (``model=cnn``); the cache key
changes only then.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.generated import cached_folder
from forgetbench.data.scenarios import (
    class_groups,
    write_class_incremental,
    write_domain_incremental,
)
from forgetbench.data.validation import open_splits, with_validation

NUM_CLASSES = 10
IMAGE_SIDE = 8


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits: features ``(n, 64)`` float32 in [0, 1], labels int64."""
    digits = load_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)


def pixel_permutations(num_shards: int, identity_first: bool, seed: int) -> np.ndarray:
    """One fixed pixel permutation per shard, ``(num_shards, 64)``.

    The first is the identity when ``identity_first``.
    """
    rng = np.random.default_rng(seed)
    size = IMAGE_SIDE * IMAGE_SIDE
    perms = np.stack([rng.permutation(size) for _ in range(num_shards)])
    if identity_first and num_shards:
        perms[0] = np.arange(size)
    return perms


def rotate(features: np.ndarray, angle: float) -> np.ndarray:
    """Rotates flat 8x8 images by ``angle`` degrees about their centre (bilinear, zero fill)."""
    images = features.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    turned = ndimage.rotate(images, angle, axes=(2, 1), reshape=False, order=1, cval=0.0)
    return turned.reshape(len(features), -1).astype(np.float32)


def as_images(features: np.ndarray) -> np.ndarray:
    """Flat digits ``(n, 64)`` as images ``(n, 8, 8)`` (the same values, row-major)."""
    return features.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)


def _build(
    cache_dir,
    prefix: str,
    name: str,
    params: dict,
    write,
    num_classes: int = NUM_CLASSES,
    image_shape: bool = False,
    validation_fraction: float = 0.0,
) -> ShardDataset:
    if image_shape:  # only then: the flat datasets' caches keep their keys
        params = {**params, "image_shape": True}

    def build(tmp):
        x, y = digits_arrays()
        return write(tmp, as_images(x) if image_shape else x, y)

    params, build = with_validation(params, build, validation_fraction, params["seed"])
    folder = cached_folder(cache_dir, prefix, params, build)
    return open_splits(folder, name, num_classes)


def _flat_transform(transform, image_shape: bool):
    """``transform`` (of flat features) applied to images when ``image_shape``."""
    if not image_shape:
        return transform
    return lambda images: as_images(transform(images.reshape(len(images), -1)))


def build_digits_split(
    cache_dir: str | os.PathLike,
    *,
    name: str | None = None,
    class_order: Sequence[int] = tuple(range(NUM_CLASSES)),
    classes_per_shard: int = 2,
    heldout_fraction: float = 0.2,
    seed: int = 0,
    domain_incremental: bool = False,
    image_shape: bool = False,
    validation_fraction: float = 0.0,
) -> ShardDataset:
    """Class-incremental digits: shard ``k`` holds the ``k``-th group of ``class_order``.

    Args:
        cache_dir: Root folder of the data cache.
        name: Dataset name in results (``digits_split``, or ``digits_split_domain`` when
            ``domain_incremental``, if ``None``).
        class_order: Classes in the order they are met; split into consecutive groups.
        classes_per_shard: Classes per shard (5 shards of 2 classes by default).
        heldout_fraction: Fraction of each shard held out, stratified by class.
        seed: Seed of the held-out split.
        domain_incremental: Label each sample by its class's position within its shard's
            group: one ``classes_per_shard``-way output shared by every shard.
        image_shape: Features shaped ``(8, 8)`` instead of 64 flat values.
        validation_fraction: Fraction of each training shard carved out as its validation
            split (seeded by ``seed``, stratified by class); 0: none.
    """
    groups = class_groups(class_order, classes_per_shard, NUM_CLASSES)
    params = {"groups": groups, "heldout_fraction": heldout_fraction, "seed": seed}
    if domain_incremental:  # only then: the class-incremental cache keeps its key
        params["within_group_labels"] = True
    write = partial(
        write_class_incremental,
        groups=groups,
        heldout_fraction=heldout_fraction,
        seed=seed,
        within_group_labels=bool(domain_incremental),
    )
    name = name or ("digits_split_domain" if domain_incremental else "digits_split")
    classes = classes_per_shard if domain_incremental else NUM_CLASSES
    return _build(
        cache_dir,
        "digits_split",
        name,
        params,
        write,
        classes,
        bool(image_shape),
        validation_fraction,
    )


def build_digits_permuted(
    cache_dir: str | os.PathLike,
    *,
    name: str = "digits_permuted",
    num_shards: int = 5,
    identity_first: bool = True,
    heldout_fraction: float = 0.2,
    seed: int = 0,
    image_shape: bool = False,
    validation_fraction: float = 0.0,
) -> ShardDataset:
    """Domain-incremental digits: shard ``k`` is every digit under pixel permutation ``k``.

    Args:
        cache_dir: Root folder of the data cache.
        name: Dataset name in results.
        num_shards: Number of shards (permutations).
        identity_first: Whether the first shard keeps the original pixel order.
        heldout_fraction: Fraction held out (one stratified split shared by all shards).
        seed: Seed of the permutations and of the held-out split.
        image_shape: Features shaped ``(8, 8)`` instead of 64 flat values.
        validation_fraction: Fraction of each training shard carved out as its validation
            split (seeded by ``seed``, stratified by class); 0: none.
    """
    if num_shards < 1:
        raise ValueError(f"data.num_shards: expected an integer >= 1. Received: {num_shards}")
    perms = pixel_permutations(num_shards, identity_first, seed)
    params = {
        "num_shards": num_shards,
        "identity_first": identity_first,
        "heldout_fraction": heldout_fraction,
        "seed": seed,
    }
    transforms = [_flat_transform(partial(_permute, perm=perm), image_shape) for perm in perms]
    write = partial(
        write_domain_incremental,
        transforms=transforms,
        heldout_fraction=heldout_fraction,
        seed=seed,
    )
    return _build(
        cache_dir,
        "digits_permuted",
        name,
        params,
        write,
        image_shape=bool(image_shape),
        validation_fraction=validation_fraction,
    )


def build_digits_rotated(
    cache_dir: str | os.PathLike,
    *,
    name: str = "digits_rotated",
    angles: Sequence[float] = (0.0, 45.0, 90.0, 135.0, 180.0),
    heldout_fraction: float = 0.2,
    seed: int = 0,
    image_shape: bool = False,
    validation_fraction: float = 0.0,
) -> ShardDataset:
    """Domain-incremental digits: shard ``k`` is every digit rotated by ``angles[k]`` degrees.

    Args:
        cache_dir: Root folder of the data cache.
        name: Dataset name in results.
        angles: Rotation of each shard, in degrees (counter-clockwise).
        heldout_fraction: Fraction held out (one stratified split shared by all shards).
        seed: Seed of the held-out split.
        image_shape: Features shaped ``(8, 8)`` instead of 64 flat values.
        validation_fraction: Fraction of each training shard carved out as its validation
            split (seeded by ``seed``, stratified by class); 0: none.
    """
    angles = [float(a) for a in angles]
    if not angles:
        raise ValueError("data.angles: expected at least one angle. Received: []")
    params = {"angles": angles, "heldout_fraction": heldout_fraction, "seed": seed}
    transforms = [_flat_transform(partial(rotate, angle=angle), image_shape) for angle in angles]
    write = partial(
        write_domain_incremental,
        transforms=transforms,
        heldout_fraction=heldout_fraction,
        seed=seed,
    )
    return _build(
        cache_dir,
        "digits_rotated",
        name,
        params,
        write,
        image_shape=bool(image_shape),
        validation_fraction=validation_fraction,
    )


def _permute(features: np.ndarray, perm: np.ndarray) -> np.ndarray:
    return features[:, perm]
