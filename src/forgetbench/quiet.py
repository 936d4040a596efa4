"""TensorFlow's native log lines that alarm without informing on a CPU machine, left out.

On a machine without a GPU, TensorFlow's CUDA build prints ``Could not find cuda drivers``,
``E0000 ... failed call to cuInit`` and similar lines from C++, which Python's ``logging`` and
``warnings`` do not reach. By default forgetbench sets ``TF_CPP_MIN_LOG_LEVEL=3`` (native errors
and warnings off) and drops the few lines printed before that setting applies (at import).
Setting ``TF_CPP_MIN_LOG_LEVEL`` yourself (``0`` shows everything) turns both off.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

LEVEL = "TF_CPP_MIN_LOG_LEVEL"
QUIET = "3"
NOISE = re.compile(
    r"absl::InitializeLog|cudart_stub|failed call to cuInit|cuda_platform|cuda_dnn|cuda_fft|"
    r"cuda_blas|computation placer|use_unbounded_threadpool|oneDNN custom operations"
)


def quiet_tensorflow() -> None:
    """Sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless it is set (call before importing TensorFlow)."""
    os.environ.setdefault(LEVEL, QUIET)


@contextmanager
def without_native_noise() -> Iterator[None]:
    """Drops ``NOISE`` lines written to file descriptor 2 in the block (when quiet).

    The block's other output to standard error is written after it, in order.
    """
    if os.environ.get(LEVEL) != QUIET:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not NOISE.search(line)))
            sys.stderr.flush()
