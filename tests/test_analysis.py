"""Sensitivities and SLO capacity, checked against the evaluate they are built on."""

import pytest

import hermes_qn as hq
from hermes_qn.analysis import sensitivity, slo_capacity


def test_elasticity_to_rate_matches_a_direct_difference_and_grows_with_load():
    sc = hq.load_scenario("chat-h100")
    low = sensitivity(sc.with_value("classes.chat.rate", 5.0), ["classes.chat.rate"])
    high = sensitivity(sc.with_value("classes.chat.rate", 55.0), ["classes.chat.rate"])
    assert 0 < low.ttft.item() < high.ttft.item()
    a = hq.evaluate(sc, rates={"chat": 55.0 * 1.01}).ttft.item()
    b = hq.evaluate(sc, rates={"chat": 55.0 * 0.99}).ttft.item()
    base = hq.evaluate(sc, rates={"chat": 55.0}).ttft.item()
    assert high.ttft.item() == pytest.approx((a - b) / 0.02 / base, rel=0.02)


def test_non_numeric_input_is_an_error():
    with pytest.raises(hq.ValidationError, match="not a number"):
        sensitivity(hq.load_scenario("chat-h100"), ["pools.h100.batching"])


def test_slo_capacity_is_where_the_slo_stops_being_met():
    sc = hq.load_scenario("chat-h100")
    cap = slo_capacity(sc).sel({"class": "chat"}).item()
    assert 0 < cap < hq.evaluate(sc).capacity.item()
    assert bool(hq.evaluate(sc, rates={"chat": 0.99 * cap}).slo_met.item())
    assert not bool(hq.evaluate(sc, rates={"chat": 1.01 * cap}).slo_met.item())
