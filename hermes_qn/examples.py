"""Built-in example networks, small enough to read and check by hand."""

from __future__ import annotations

from .network import Closed, Delay, Network, Open, Queue


def worked_example() -> Network:
    """The mixed network of the README: 20 interactive users and an open batch stream.

    Stations: a processor-sharing CPU, an FCFS disk, a LAN delay, a 4-server
    pool and a load-dependent GPU (1.0x, 1.8x, 2.4x its one-job speed with 1,
    2, 3+ jobs). Class ``users``: 20 clients thinking 5 s between requests.
    Class ``jobs``: Poisson arrivals at 0.4 requests/s. Demands in seconds.
    """
    return Network(
        stations={
            "cpu": Queue(),
            "disk": Queue(discipline="fcfs"),
            "lan": Delay(),
            "pool": Queue(servers=4),
            "gpu": Queue(rate_multipliers=(1.0, 1.8, 2.4)),
        },
        classes={"users": Closed(population=20, think_time=5.0), "jobs": Open(arrival_rate=0.4)},
        demands={
            "users": {"cpu": 0.05, "disk": 0.03, "lan": 0.01, "pool": 0.4},
            "jobs": {"cpu": 0.2, "gpu": 0.5, "pool": 0.8},
        },
    )
