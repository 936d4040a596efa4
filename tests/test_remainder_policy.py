"""RemainderPolicy: settings come from the name, and may not contradict it."""

import pytest

from forgetbench.remainder import NAMED_POLICIES, RemainderPolicy


@pytest.mark.parametrize("name", sorted(NAMED_POLICIES))
def test_a_named_policy_takes_its_settings_from_the_name(name):
    policy = RemainderPolicy(name)
    assert (policy.keep_partial, policy.pad_partial, policy.exact) == NAMED_POLICIES[name]
    assert RemainderPolicy(name, *NAMED_POLICIES[name]) == policy


def test_named_policies_differ_where_their_names_say():
    drop, pad, weighted, naive = (RemainderPolicy(n) for n in ("drop", "pad", "weighted", "naive"))
    assert (drop.num_batches(70, 16), pad.num_batches(70, 16)) == (4, 5)
    assert drop.samples_fed(70, 16) == 64 and weighted.samples_fed(70, 16) == 70
    assert pad.pad_partial and not weighted.pad_partial and not naive.exact


def test_settings_that_contradict_the_name_are_refused():
    # A weighted policy filed under "drop" would put its results under the wrong name.
    with pytest.raises(ValueError, match=r"remainder 'drop': expected .* \(False, False, True\)"):
        RemainderPolicy("drop", keep_partial=True, pad_partial=False, exact=True)
    with pytest.raises(ValueError, match=r"remainder 'naive'.*Received \(True, False, True\)"):
        RemainderPolicy("naive", exact=True)


def test_a_policy_of_ones_own_is_named_freely_but_must_be_coherent():
    own = RemainderPolicy("pad_naive", pad_partial=True, exact=False)
    assert (own.keep_partial, own.pad_partial, own.exact) == (True, True, False)
    with pytest.raises(ValueError, match=r"pad_partial needs keep_partial"):
        RemainderPolicy("mine", keep_partial=False, pad_partial=True)
