"""Batch-remainder policies: what happens to the last, partial batch of a shard or an epoch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemainderPolicy:
    """How a partial last batch is fed and how batch losses are normalised.

    Attributes:
        name: ``drop``, ``pad``, ``weighted`` or ``naive``.
        keep_partial: Feed the partial batch (``False``: drop it).
        pad_partial: Pad the partial batch to the full batch size with zero-weight samples.
        exact: Normalise losses and accumulated gradients by real sample counts; ``False`` keeps
            Keras's behaviour (each micro-batch's mean weighted equally).
    """

    name: str
    keep_partial: bool = True
    pad_partial: bool = False
    exact: bool = True

    def num_batches(self, num_samples: int, batch_size: int) -> int:
        """Number of batches an epoch of ``num_samples`` yields."""
        full, rest = divmod(num_samples, batch_size)
        return full + int(rest > 0 and self.keep_partial)

    def samples_fed(self, num_samples: int, batch_size: int) -> int:
        """Real (not padded) samples an epoch of ``num_samples`` trains on."""
        if self.keep_partial:
            return num_samples
        return num_samples // batch_size * batch_size
