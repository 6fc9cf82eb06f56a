"""Shipped service-time coefficients (derived from traces by ``python -m hermes_qn.fit``)."""
