"""``forgetbench-data``: check a folder of shards, or convert it for memory mapping.

``check DIR`` validates every shard (and a held-out folder, when given) and prints one row per
shard; it exits with status 1 and the error, naming the file, on any problem. ``convert DIR``
does the one-time conversion of ``.npz`` members into memory-mappable ``.npy`` files (where runs
look for them: ``DIR/.forgetbench_cache``, or the per-user cache when ``DIR`` is read-only, or
under ``--convert-cache``, as ``data.convert_cache``) ahead of a sweep, with a progress bar.
``cache list`` and ``cache clean [--older-than DAYS]`` show and free the data caches.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

from forgetbench.data import caches
from forgetbench.data.cache_location import resolve_cache
from forgetbench.data.dataset import ShardDataset, check_labels_below
from forgetbench.data.discovery import discover_shards
from forgetbench.data.diskspace import size_text
from forgetbench.data.errors import DiskFullError, ShardCacheError, ShardFormatError
from forgetbench.data.labels import MODES
from forgetbench.data.npz_dir import heldout_count, open_heldout_dir
from forgetbench.data.shard_cache import prepare_shards
from forgetbench.data.shard_checks import ShardFiles, check_consistent
from forgetbench.data.store import ShardStore

SHOWN_CLASSES = 10
DESCRIPTION = (
    "Check a folder of shard files (NAME.npz, or NAME.<feature key>.npy with "
    "NAME.<label key>.npy) or convert it once for memory mapping."
)


def format_classes(classes: tuple[int, ...]) -> str:
    """Class ids as ``0,1,2``, or a count and range when there are many."""
    if len(classes) <= SHOWN_CLASSES:
        return ",".join(map(str, classes))
    return f"{len(classes)} classes, {classes[0]}..{classes[-1]}"


def shard_table(shards: list[ShardFiles], heldout_sizes: list[int]) -> pd.DataFrame:
    """One row per shard: name, samples, feature shape and dtypes, classes, held-out size."""
    return pd.DataFrame(
        {
            "shard": [s.name for s in shards],
            "samples": [s.n for s in shards],
            "feature shape": [str(s.feature_shape) for s in shards],
            "dtype": [s.feature_dtype for s in shards],
            "label dtype": [s.label_dtype for s in shards],
            "classes present": [format_classes(s.classes) for s in shards],
            "finite": [s.all_finite for s in shards],
            "held-out": heldout_sizes,
        }
    )


def check(args: argparse.Namespace) -> int:
    """Validates the folder as a run would, and prints the shard table."""
    options = {"feature_key": args.feature_key, "label_key": args.label_key}
    options["allow_nonfinite"] = args.allow_nonfinite
    options["cache_root"] = args.convert_cache
    options["labels"] = args.labels
    train = ShardStore(args.folder, **options)
    if args.heldout_dir is None:
        stores = [train]
        sizes = [heldout_count(s.n, args.heldout_fraction, s.source) for s in train.shards]
        heldout = f"carved, heldout_fraction={args.heldout_fraction}"
    else:
        stores = [train, open_heldout_dir(train, args.heldout_dir, **options)]
        sizes, heldout = stores[1].sizes.tolist(), f"from {args.heldout_dir}"
    classes = sorted(set().union(*(store.classes for store in stores)))
    num_classes = classes[-1] + 1 if args.num_classes is None else args.num_classes
    if len(stores) == 2:
        ShardDataset("check", *stores, num_classes=num_classes)  # a run's cross-checks
    check_labels_below(num_classes, *stores)
    print(shard_table(train.shards, sizes).to_string(index=False))
    print(
        f"OK: {train.num_shards} shards, {train.num_samples} samples, "
        f"{len(classes)} classes present ({format_classes(tuple(classes))}); held-out {heldout}"
    )
    return 0


def convert(args: argparse.Namespace) -> int:
    """Converts and validates every shard, showing progress, and says where the files are."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras.utils import Progbar  # imported here: TensorFlow loads slowly, check needs none

    found = discover_shards(args.folder, args.feature_key, args.label_key)
    keys = (args.feature_key, args.label_key)
    cache = resolve_cache(args.folder, found, *keys, args.convert_cache, args.labels)
    bar = Progbar(len(found), unit_name="shard")
    shards = prepare_shards(found, list(found), cache, *keys, args.labels, on_shard=bar.update)
    check_consistent(shards, allow_nonfinite=args.allow_nonfinite)
    samples = sum(s.n for s in shards)
    print(f"OK: {len(shards)} shards, {samples} samples, memory-mappable from {cache}")
    return 0


def cache(args: argparse.Namespace) -> int:
    """Lists the data caches' entries with sizes, or cleans them."""
    places = args.places or caches.default_places()
    total = 0
    for place in places:
        if args.action == "clean":
            found = caches.clean(place, args.older_than)
            verb = "removed"
        else:
            found, verb = caches.entries(place), "holds"
        size = sum(e.bytes for e in found)
        total += size
        print(f"{place}: {verb} {len(found)} entries, {size_text(size)}")
        for e in found:
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
            print(f"  {size_text(e.bytes):>10}  last used {used}  {e.state:<13}  {e.path}")
    print(f"{'Freed' if args.action == 'clean' else 'Total'}: {size_text(total)}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line: ``check``, ``convert`` and ``cache`` subcommands."""
    main_parser = argparse.ArgumentParser(prog="forgetbench-data", description=DESCRIPTION)
    commands = main_parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("check", check, "validate a shard folder and print one row per shard"),
        ("convert", convert, "convert .npz members to memory-mappable .npy files, once"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(func=func)
        sub.add_argument("folder", type=Path, metavar="DIR", help="folder of shard files")
        sub.add_argument("--feature-key", default="array1", help="features member (array1)")
        sub.add_argument("--label-key", default="array2", help="labels member (array2)")
        sub.add_argument(
            "--allow-nonfinite", action="store_true", help="accept NaN or infinite features"
        )
        sub.add_argument(
            "--labels",
            choices=MODES,
            default="index",
            help="as data.labels: class ids (whole floats and (N, 1) accepted), one-hot rows, "
            "or the argmax of any rows (default: index)",
        )
        sub.add_argument(
            "--convert-cache",
            type=Path,
            metavar="ROOT",
            help="root folder for converted members, as data.convert_cache (default: "
            "DIR/.forgetbench_cache, or the per-user cache when DIR is read-only)",
        )
    check_parser = commands.choices["check"]
    check_parser.add_argument("--heldout-dir", type=Path, help="parallel held-out folder")
    check_parser.add_argument(
        "--heldout-fraction", type=float, default=0.2, help="fraction carved (no --heldout-dir)"
    )
    check_parser.add_argument("--num-classes", type=int, help="labels must be below this")
    text = "list the data caches' entries with sizes, or clean them"
    cache_parser = commands.add_parser("cache", help=text, description=text)
    cache_parser.set_defaults(func=cache)
    cache_parser.add_argument("action", choices=["list", "clean"])
    cache_parser.add_argument(
        "places",
        nargs="*",
        type=Path,
        metavar="PLACE",
        help="cache roots or shard folders (default: $FORGETBENCH_DATA_CACHE or .cache/data, "
        "and the per-user shard cache)",
    )
    cache_parser.add_argument(
        "--older-than",
        type=float,
        metavar="DAYS",
        help="clean only entries unused for this many days (unfinished ones always go)",
    )
    return main_parser


def main(argv: list[str] | None = None) -> int:
    """Runs ``forgetbench-data``; returns the exit status (1 on any problem with the data)."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # conversions, cache places
    try:
        return args.func(args)
    except (ShardFormatError, ShardCacheError, DiskFullError, ValueError) as exc:
        print(f"forgetbench-data {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
