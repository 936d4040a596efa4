"""The methods' ordering reported by the literature, on the digits presets over 3 seeds (slow).

Hsu et al. 2018 (Table 2) and van de Ven et al. 2022 on Split and Permuted MNIST: task-
incremental, LwF and SI well above sequential training; class-incremental, sequential, SI and
LwF all near 1/5 (only the last pair is predicted), A-GEM at most a little above, replay far
above; permuted (domain-incremental), SI and EWC above sequential; class-incremental, DER++ and
GDumb near replay with the same memory budget. The presets' hyperparameters
(``conf/tuned/``) were picked with seed 10, not one of the seeds here.
"""

import numpy as np
import pytest


@pytest.mark.slow
def test_task_incremental_split_lwf_and_si_well_above_sequential(tmp_path, preset_acc):
    sequential = preset_acc("split_digits_task", "sequential")
    for strategy in ("lwf", "si"):
        mitigated = preset_acc("split_digits_task", strategy)
        assert mitigated.mean() > sequential.mean() + 0.1, strategy
        assert np.all(mitigated > sequential), strategy


@pytest.mark.slow
def test_class_incremental_split_only_replay_escapes_one_fifth(tmp_path, preset_acc):
    means = {s: preset_acc("split_digits", s).mean() for s in ("sequential", "si", "lwf")}
    for strategy, mean in means.items():
        assert 0.12 < mean < 0.3, (strategy, mean)
    agem = preset_acc("split_digits", "agem").mean()
    replay = preset_acc("split_digits", "replay").mean()
    assert means["sequential"] - 0.05 < agem < 0.45
    assert replay > 0.8 and replay > agem + 0.4


@pytest.mark.slow
def test_permuted_digits_si_and_ewc_above_sequential(tmp_path, preset_acc):
    sequential = preset_acc("permuted_digits", "sequential")
    for strategy in ("si", "ewc"):
        assert preset_acc("permuted_digits", strategy).mean() > sequential.mean() + 0.05


@pytest.mark.slow
def test_class_incremental_split_derpp_and_gdumb_near_replay(tmp_path, preset_acc):
    # Buzzega et al. 2020 (Seq-MNIST) and Prabhu et al. 2020 (class-incremental MNIST): with the
    # same 500-sample memory, DER++ and GDumb land with experience replay, far above sequential.
    sequential = preset_acc("split_digits", "sequential").mean()
    replay = preset_acc("split_digits", "replay").mean()
    for strategy in ("derpp", "gdumb"):
        mean = preset_acc("split_digits", strategy).mean()
        assert mean > sequential + 0.5, strategy
        assert abs(mean - replay) < 0.08, (strategy, mean, replay)
