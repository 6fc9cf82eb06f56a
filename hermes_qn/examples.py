"""Built-in example networks, small enough to read and check by hand."""

from __future__ import annotations

import numpy as np

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


def random_closed_network(rng: np.random.Generator, *, load_dependent: bool = False) -> Network:
    """A random closed network for validation: 2-3 classes of 2-15 clients over 3-5 stations.

    Demands are uniform on 0.01-1 s, think times on 0-5 s. With
    ``load_dependent`` the first station has 2-4 servers and the second a
    random increasing table of four rate multipliers.
    """
    n_stations = int(rng.integers(3, 6))
    stations = {}
    for m in range(n_stations):
        if load_dependent and m == 0:
            stations[f"s{m}"] = Queue(servers=int(rng.integers(2, 5)))
        elif load_dependent and m == 1:
            stations[f"s{m}"] = Queue(rate_multipliers=tuple(np.cumsum(rng.uniform(0.3, 1.0, 4))))
        else:
            stations[f"s{m}"] = Queue()
    classes, demands = {}, {}
    for k in range(int(rng.integers(2, 4))):
        classes[f"c{k}"] = Closed(int(rng.integers(2, 16)), float(rng.uniform(0, 5)))
        demands[f"c{k}"] = {s: float(rng.uniform(0.01, 1.0)) for s in stations}
    return Network(stations=stations, classes=classes, demands=demands)
