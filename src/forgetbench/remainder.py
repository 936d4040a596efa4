"""Batch-remainder policies: what happens to the last, partial batch of a shard or an epoch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from forgetbench.config_check import CONF


@dataclass(frozen=True)
class RemainderPolicy:
    """How a partial last batch is fed and how batch losses are normalised.

    Attributes (settings left unset come from the name):
        name: ``drop``, ``pad``, ``weighted`` or ``naive``, or a name of one's own.
        keep_partial: Feed the partial batch (``False``: drop it).
        pad_partial: Pad the partial batch to the full batch size with zero-weight samples.
        exact: Normalise losses and accumulated gradients by real sample counts; ``False`` keeps
            Keras's behaviour (each micro-batch's mean weighted equally).
    """

    name: str
    keep_partial: bool | None = None
    pad_partial: bool | None = None
    exact: bool | None = None

    def __post_init__(self) -> None:
        """Fills unset settings from the name; refuses settings that contradict it.

        Results are filed under the name, so ``drop`` must drop. A new name (a policy of one's
        own) takes ``weighted``'s settings for any left unset.
        """
        expected = NAMED_POLICIES.get(self.name)
        defaults = expected or NAMED_POLICIES["weighted"]
        for field, default in zip(SETTINGS, defaults, strict=True):
            if getattr(self, field) is None:
                object.__setattr__(self, field, default)
        settings = (self.keep_partial, self.pad_partial, self.exact)
        if expected is not None and settings != expected:
            raise ValueError(
                f"remainder '{self.name}': expected keep_partial, pad_partial, exact = "
                f"{expected}. Received {settings}. Choose the policy by its config "
                "(remainder=drop|pad|weighted|naive), or give other settings a new name"
            )
        if self.pad_partial and not self.keep_partial:
            raise ValueError(
                f"remainder '{self.name}': pad_partial needs keep_partial (a dropped batch "
                "cannot be padded). Received keep_partial=False, pad_partial=True"
            )

    def num_batches(self, num_samples: int, batch_size: int) -> int:
        """Number of batches an epoch of ``num_samples`` yields."""
        full, rest = divmod(num_samples, batch_size)
        return full + int(rest > 0 and self.keep_partial)

    def samples_fed(self, num_samples: int, batch_size: int) -> int:
        """Real (not padded) samples an epoch of ``num_samples`` trains on."""
        if self.keep_partial:
            return num_samples
        return num_samples // batch_size * batch_size


SETTINGS = ("keep_partial", "pad_partial", "exact")


def named_policies(folder: Path = CONF / "remainder") -> dict[str, tuple[bool, bool, bool]]:
    """The named policies' settings, ``{name: (keep_partial, pad_partial, exact)}``.

    Read from their configs (``conf/remainder/NAME.yaml``), where they are defined.
    """
    policies = {}
    for path in sorted(folder.glob("*.yaml")):
        config = OmegaConf.load(path)
        policies[config.name] = tuple(bool(config[key]) for key in SETTINGS)
    return policies


NAMED_POLICIES = named_policies()
