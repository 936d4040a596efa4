"""``logger=mlflow``: one MLflow run per job, sent when the run ends.

The run is named by the run id and tagged with dataset, strategy, remainder and seed. It holds
the resolved config as parameters (dotted keys), the curves as metrics
(``eval/accuracy/<shard>``, ``eval/loss/<shard>``, stepped by samples seen), the training log
(``train/loss``, ``train/accuracy``, ``train/penalty``, stepped by the global epoch), the
summary's metrics (``final/<metric>``), and the run folder's files as artifacts (not its
checkpoint). A tracking server that does not answer within ``logger.timeout_s`` is skipped with
one warning: the run never waits on it for long nor fails because of it.
"""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import pandas as pd

from forgetbench.checkpoint import CHECKPOINT, PREVIOUS
from forgetbench.results.io import CURVES
from forgetbench.tracking.base import Tracker

BATCH = 500  # MLflow's log_batch takes at most 1000 metrics and 100 parameters at a time
PARAMS_BATCH = 100
MAX_PARAM = 500  # characters kept of a parameter's value


def flat_params(node, prefix: str = "") -> dict[str, str]:
    """A nested config as ``{dotted.key: str(value)}`` (values cut to ``MAX_PARAM`` characters)."""
    if isinstance(node, dict):
        out: dict[str, str] = {}
        for key, value in node.items():
            out.update(flat_params(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: str(node)[:MAX_PARAM]}


class MlflowTracker(Tracker):
    """Sends the finished run to an MLflow tracking store.

    Args:
        out_dir: The run folder.
        identity: The run's id and settings.
        tracking_uri: MLflow tracking URI (``None``: ``$MLFLOW_TRACKING_URI``, else ``./mlruns``).
        experiment: The MLflow experiment's name (created when missing).
        artifacts: Upload the run folder's files.
        timeout_s: Seconds a tracking server may take to answer its health check.
    """

    name = "mlflow"

    def __init__(
        self,
        out_dir: Path,
        identity: dict,
        tracking_uri: str | None = None,
        experiment: str = "forgetbench",
        artifacts: bool = True,
        timeout_s: float = 5.0,
    ) -> None:
        super().__init__(out_dir, identity)
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        self.experiment, self.artifacts = experiment, bool(artifacts)
        self.timeout_s = float(timeout_s)
        self.run_id: str | None = None  # the MLflow run's id once sent

    def _check_server(self) -> None:
        """Raises ``OSError`` when an HTTP tracking server does not answer in time."""
        uri = self.tracking_uri or ""
        if uri.startswith(("http://", "https://")):
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=self.timeout_s):
                pass

    def log_end(self, summary: dict) -> None:
        """Creates the MLflow run: parameters, metrics, final metrics, artifacts."""
        self._check_server()
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(self.timeout_s, 1))))
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        found = client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(self.experiment)
        tags = {k: str(v) for k, v in self.identity.items()}
        run = client.create_run(experiment_id, run_name=self.identity["run_id"], tags=tags)
        self.run_id = run.info.run_id
        params = [Param(k, v) for k, v in flat_params(summary.get("config") or {}).items()]
        for i in range(0, len(params), PARAMS_BATCH):
            client.log_batch(self.run_id, params=params[i : i + PARAMS_BATCH])
        metrics = self._metrics(summary)
        now = int(time.time() * 1000)
        for i in range(0, len(metrics), BATCH):
            client.log_batch(
                self.run_id,
                metrics=[Metric(k, v, now, s) for k, v, s in metrics[i : i + BATCH]],
            )
        if self.artifacts:
            skip = {CHECKPOINT, PREVIOUS, ".lock"}
            for path in sorted(self.out_dir.iterdir()):
                if path.name in skip or path.name.startswith("."):
                    continue
                if path.is_dir():
                    client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
                else:
                    client.log_artifact(self.run_id, str(path))
        client.set_terminated(
            self.run_id, "FINISHED" if summary["status"] == "completed" else "FAILED"
        )

    def _metrics(self, summary: dict) -> list[tuple[str, float, int]]:
        curves = pd.read_parquet(self.out_dir / CURVES)
        out = []
        for row in curves.itertuples(index=False):
            for key in ("accuracy", "loss"):
                out.append(
                    (
                        f"eval/{key}/{row.eval_shard}",
                        float(getattr(row, key)),
                        int(row.samples_seen),
                    )
                )
        log = self.trainer.train_log if self.trainer is not None else []
        for step, row in enumerate(log):
            out.extend(
                (f"train/{k}", float(row[k]), step)
                for k in ("loss", "accuracy", "penalty")
                if k in row
            )
        last = int((summary.get("timing") or {}).get("samples_seen") or 0)
        for key, value in (summary.get("metrics") or {}).items():
            if value is not None:
                out.append((f"final/{key}", float(value), last))
        return out
