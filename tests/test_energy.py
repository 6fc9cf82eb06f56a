"""Tests of hermes_qn.energy: power, joules per token, dollars per million tokens."""

import dataclasses
import doctest

import numpy as np
import pytest

from hermes_qn import energy, hardware
from hermes_qn.errors import ValidationError

H100 = hardware.load_device("H100-SXM")


def test_doctests():
    failures, _ = doctest.testmod(energy)
    assert failures == 0


def test_power_linear_in_utilisation():
    np.testing.assert_allclose(energy.power(H100, [0, 0.25, 1], idle_power=100.0),
                               [100.0, 250.0, 700.0])
    assert energy.power(H100, 1.0, devices=8, idle_power=100.0) == 5600.0
    with_idle = dataclasses.replace(H100, idle_power=70.0)
    assert energy.power(with_idle, 0.0) == 70.0


def test_joules_per_token_by_hand():
    # 8 GPUs at 60 % of the way from 100 W to 700 W (460 W) for 2 s, 1000 tokens
    j = energy.joules_per_token(H100, 2.0, 1000, utilisation=0.6, devices=8, idle_power=100.0)
    assert j == pytest.approx(8 * 460.0 * 2.0 / 1000)
    j = energy.joules_per_token(H100, np.array([1.0, 2.0]), 100, idle_power=100.0)
    np.testing.assert_allclose(j, [7.0, 14.0])


def test_dollars_by_hand():
    # 4.916 USD/h, 8 GPUs, 10 s for 50,000 tokens
    c = energy.dollars_per_million_tokens(H100, 10.0, 50_000, devices=8)
    assert c == pytest.approx(4.916 / 3600 * 8 * 10 / 50_000 * 1e6)
    assert energy.dollars_per_million_tokens("MI300X", 1.0, 1e6, price_per_hour=3.6) == \
        pytest.approx(1e-3)


def test_missing_idle_power_is_explicit():
    # Gaudi2 has a peak (TDP) but no public idle reading
    with pytest.raises(ValidationError, match=r"Gaudi2 has no idle_power \(the catalog has no "
                                              r"published idle figure.*valid: pass idle_power="):
        energy.joules_per_token("Gaudi2", 1.0, 10)


def test_catalog_idle_power_is_used():
    # H200 carries a sourced bare-idle figure (73 W); no idle_power= needed
    h200 = hardware.load_device("H200")
    assert energy.power(h200, 0.0) == pytest.approx(h200.idle_power)
    assert energy.joules_per_token(h200, 2.0, 100, utilisation=0.0, devices=8) == \
        pytest.approx(8 * h200.idle_power * 2.0 / 100)


def test_missing_price():
    with pytest.raises(ValidationError, match=r"MI300X has no price_per_hour; valid: pass "
                                              r"price_per_hour=.*H100-SXM, H200"):
        energy.dollars_per_million_tokens("MI300X", 1.0, 10)


def test_bad_values():
    with pytest.raises(ValidationError, match=r"utilisation 1.5 is out of range"):
        energy.power(H100, 1.5, idle_power=100.0)
    with pytest.raises(ValidationError, match=r"tokens: got 0.0; valid: finite numbers > 0"):
        energy.joules_per_token(H100, 1.0, 0, idle_power=100.0)
    with pytest.raises(ValidationError, match=r"devices: got 0; valid: an integer >= 1"):
        energy.power(H100, 0.5, devices=0, idle_power=100.0)
    with pytest.raises(ValidationError, match=r"price_per_hour: got -1.0"):
        energy.dollars_per_million_tokens(H100, 1.0, 10, price_per_hour=-1)
    with pytest.raises(ValidationError, match=r"no peak_power"):
        energy.power("TPU-v5e", 0.5, idle_power=10.0)
