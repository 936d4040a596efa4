"""Split Digits in Avalanche 0.6.0: the peer side of ``run.py`` (run with bench/peers/.venv).

The protocol of ``protocol.py``: five experiences of two classes (0-1, ..., 8-9) built by
``nc_benchmark`` (as Avalanche's own tests build their fast benchmarks) from the union of the
training shards and the union of the held-out shards of ``protocol.split_digits``, so every
experience holds exactly forgetbench's shard (checked by digest); an MLP 64-100-100-10 (ReLU),
Adam (lr 1e-3), batches of 32, 5 epochs per experience, evaluation of every held-out split after
each experience (batches of 4096, no loggers), one CPU thread (``torch.set_num_threads``).

Strategies: ``sequential`` (``Naive``), ``replay`` (``Replay``, ``mem_size`` 500: Avalanche's
``ExperienceBalancedBuffer``, filled at the end of each experience with an equal random share per
experience, and a ``ReplayDataLoader`` that joins every batch of 32 current samples with 32 from a
shuffled pass over the buffer), ``ewc`` (``EWC``, mode ``separate``, ``ewc_lambda`` = 100 / 2:
Avalanche adds ``lambda * sum F (theta - theta*)^2`` where forgetbench adds ``(lambda / 2) * ...``;
its ``F`` is the mean over mini-batches of squared mini-batch-mean gradients on the whole
experience, forgetbench's the mean of per-sample squared gradients on 1000 samples, so the two
penalties still differ in scale) and ``joint`` (``JointTraining``: 5 epochs over all experiences).

Runs the grid ``--strategies`` x ``--seeds`` in this one process and prints one result line
(``protocol.RESULT_MARK`` + JSON): per run the final average accuracy (ACC, mean of the last row
of the accuracy matrix, as forgetbench's ``metrics.acc``), the accuracy matrix, and the seconds
of training and evaluation measured around ``train``/``eval``; plus the import seconds and the
in-process seconds of the whole grid. ``run.py`` times the process itself from outside.

Usage: ``bench/peers/.venv/bin/python bench/peers/avalanche_split_digits.py [--strategies ...]
[--seeds 0 1 2] [--threads 1] [--init torch|glorot] [--json PATH]``.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocol  # noqa: E402

_TORCHVISION_STUBS = None  # keeps the stub op library alive (a Library unregisters when freed)


def import_torchvision():
    """Imports torchvision beside a CPU build of torch.

    PyPI's torchvision for Linux x86_64 is a CUDA build: beside torch's CPU wheel its C++ ops
    library cannot load (it links ``libtorch_cuda.so``), which torchvision tolerates, except that
    its ``_meta_registrations`` registers fake kernels for ``torchvision::nms`` and ``qnms``
    without checking (``RuntimeError: operator torchvision::nms does not exist``). Avalanche
    imports torchvision everywhere but uses none of its ops here, so when that import fails the
    two operator schemas are declared (no kernels) and the import is retried. A torchvision whose
    ops do load is imported untouched.
    """
    global _TORCHVISION_STUBS
    import torch

    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _TORCHVISION_STUBS = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            _TORCHVISION_STUBS.define(
                f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
            )
        import torchvision
    return torchvision


import_torchvision()
warnings.filterwarnings("ignore", message="No loggers specified")  # none wanted: no printing
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # qpsolvers: "no QP solver found" (only GEM needs one)
    import avalanche  # noqa: E402
    import torch  # noqa: E402
    from avalanche.benchmarks import nc_benchmark  # noqa: E402
    from avalanche.evaluation.metrics import accuracy_metrics  # noqa: E402
    from avalanche.training import EWC, JointTraining, Naive, Replay  # noqa: E402
    from avalanche.training.plugins import EvaluationPlugin  # noqa: E402
    from torch import nn  # noqa: E402
    from torch.utils.data import TensorDataset  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - START


def benchmark():
    """The Split Digits benchmark: ``nc_benchmark`` over the protocol's shards, classes in order."""
    shards = protocol.split_digits()

    def union(x_key: str, y_key: str) -> TensorDataset:
        x = torch.from_numpy(np.concatenate([s[x_key] for s in shards]))
        y = torch.from_numpy(np.concatenate([s[y_key] for s in shards]))
        return TensorDataset(x, y)

    return nc_benchmark(
        union("x_train", "y_train"),
        union("x_test", "y_test"),
        n_experiences=len(protocol.CLASS_GROUPS),
        task_labels=False,
        shuffle=False,
        fixed_class_order=[c for group in protocol.CLASS_GROUPS for c in group],
    )


def stream_digest(stream) -> str:
    """``protocol.digest`` of a stream's experiences (their samples, in any order)."""
    parts = []
    for exp in stream:
        items = [exp.dataset[i] for i in range(len(exp.dataset))]
        parts.append(
            (torch.stack([it[0] for it in items]).numpy(), np.array([int(it[1]) for it in items]))
        )
    return protocol.digest(parts)


def mlp(init: str = "torch") -> nn.Module:
    """64-100-100-10, ReLU: the same layers as forgetbench's ``model.hidden=[100,100]``.

    ``init="torch"`` keeps PyTorch's default initialisation (uniform weights and biases scaled
    by ``1/sqrt(fan_in)``); ``"glorot"`` uses Keras's (Glorot-uniform weights, zero biases).
    """
    sizes = [64, *protocol.HIDDEN]
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(sizes[-1], protocol.NUM_CLASSES))
    if init == "glorot":
        for layer in net:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
    elif init != "torch":
        raise ValueError(f"init: expected 'torch' or 'glorot'. Received {init!r}")
    return net


def make_strategy(name: str, model: nn.Module, ewc_lambda: float):
    """The Avalanche strategy for one of ``protocol.STRATEGIES``."""
    common = {
        "model": model,
        "optimizer": torch.optim.Adam(model.parameters(), lr=protocol.LEARNING_RATE),
        "criterion": nn.CrossEntropyLoss(),
        "train_mb_size": protocol.BATCH_SIZE,
        "train_epochs": protocol.EPOCHS,
        "eval_mb_size": protocol.EVAL_BATCH_SIZE,
        "device": "cpu",
        "evaluator": EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
    }
    if name == "sequential":
        return Naive(**common)
    if name == "replay":
        return Replay(mem_size=protocol.REPLAY_CAPACITY, **common)
    if name == "ewc":
        return EWC(ewc_lambda=ewc_lambda, mode="separate", **common)
    if name == "joint":
        return JointTraining(**common)
    raise ValueError(f"unknown strategy {name!r}; expected one of {protocol.STRATEGIES}")


def accuracies(metrics: dict, n: int) -> list[float]:
    """Top-1 accuracy on each test experience from ``strategy.eval``'s metrics."""
    by_exp = {}
    for key, value in metrics.items():
        if key.startswith("Top1_Acc_Exp/eval_phase/test_stream/"):
            by_exp[int(key.rsplit("Exp", 1)[1])] = float(value)
    return [by_exp[k] for k in range(n)]


def run(name: str, seed: int, bm, ewc_lambda: float, init: str = "torch") -> dict:
    """One run: train on each experience in turn (all at once for joint), evaluate after each."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    strategy = make_strategy(name, mlp(init), ewc_lambda)
    n = len(bm.test_stream)
    experiences = [bm.train_stream] if name == "joint" else list(bm.train_stream)
    matrix, train_s, eval_s = [], 0.0, 0.0
    for exp in experiences:
        t0 = time.perf_counter()
        strategy.train(exp, num_workers=0)
        t1 = time.perf_counter()
        matrix.append(accuracies(strategy.eval(bm.test_stream, num_workers=0), n))
        eval_s += time.perf_counter() - t1
        train_s += t1 - t0
    return {
        "strategy": name,
        "seed": seed,
        "acc": float(np.mean(matrix[-1])),
        "accuracy_matrix": matrix,
        "train_s": train_s,
        "eval_s": eval_s,
        "train_eval_s": train_s + eval_s,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=list(protocol.STRATEGIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(protocol.SEEDS))
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument(
        "--ewc-lambda",
        type=float,
        default=protocol.EWC_LAMBDA / 2,
        help="Avalanche's ewc_lambda (default 50: forgetbench's lambda 100 without its 1/2)",
    )
    parser.add_argument(
        "--init", choices=["torch", "glorot"], default="torch", help="weight initialisation"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bm = benchmark()
    digest = {"train": stream_digest(bm.train_stream), "heldout": stream_digest(bm.test_stream)}
    runs = []
    grid_start = time.perf_counter()
    for name in args.strategies:
        for seed in args.seeds:
            # Avalanche's @deprecated (the replay buffer's update) re-enables its own warning
            # at every call; recording swallows it.
            with warnings.catch_warnings(record=True):
                result = run(name, seed, bm, args.ewc_lambda, args.init)
            runs.append(result)
            print(
                f"avalanche {name} seed {seed}: ACC {result['acc']:.3f}, "
                f"train+eval {result['train_eval_s']:.2f} s",
                flush=True,
            )
    result = {
        "side": "avalanche",
        "versions": {
            "avalanche": avalanche.__version__,
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,  # None: a CPU build
            "python": sys.version.split()[0],
        },
        "threads": torch.get_num_threads(),
        "ewc_lambda": args.ewc_lambda,
        "init": args.init,
        "digest": digest,
        "import_s": IMPORT_SECONDS,
        "runs_s": time.perf_counter() - grid_start,
        "in_process_s": time.perf_counter() - START,
        "runs": runs,
    }
    return protocol.emit(result, args.json)


if __name__ == "__main__":
    main()
