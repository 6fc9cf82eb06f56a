"""Built-in example networks, small enough to read and check by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .network import Closed, Delay, Network, Open, Queue

if TYPE_CHECKING:
    from .scenario import Scenario


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


def multi_pool_scenario(rate_scale: float = 1.0) -> "Scenario":
    """Five request classes over eight pools of five device types (the benchmark's large case).

    Chat and code on colocated H100 and A100 pools, retrieval on CPU sockets, a
    reasoning class with chunked prefill on H200, a routed class split between
    two 8B pools, and a cross-vendor disaggregated 70B deployment (MI300X
    prefill, H100 decode, InfiniBand). ``rate_scale`` multiplies every rate.
    """
    from .scenario import (Embed, Generate, Pool, RequestClass, Scenario, Search, SLO, Target)
    from .workload import TokenLengths, dataset

    pools = (
        Pool("cpu", "Xeon-8480+", devices=4, models=("e5-base-v2",)),
        Pool("h100-chat", "H100-SXM", devices=8, models=("llama-3.1-8b",)),
        Pool("a100-chat", "A100-80GB-SXM", devices=4, models=("llama-3.1-8b",),
             batching="chunked", chunk_tokens=512),
        Pool("h200-reason", "H200", devices=8, tp=2, models=("qwen3-32b",), batching="chunked",
             chunk_tokens=1024),
        Pool("mi300x-prefill", "MI300X", devices=4, tp=2, models=("llama-3.1-70b",)),
        Pool("h100-decode", "H100-SXM", devices=8, tp=4, models=("llama-3.1-70b",)),
        Pool("l40s-small", "L40S", devices=4, models=("qwen2.5-7b",), batching="static",
             batch_cap=32),
        Pool("gpu-rerank", "H100-SXM", devices=1, models=("bge-reranker-base",)),
    )
    conv, code = dataset("azure-conv"), dataset("azure-code")
    slo = SLO(ttft=1.0, tpot=0.1, percentile=90)
    rag_search = Search("cpu", "ivf_pq", corpus=1e7, dim=768, k=20, retrieved_tokens=1500,
                        options={"nlist": 16384, "nprobe": 32, "pq_m": 96, "precision": "bf16"})
    classes = (
        RequestClass("chat", (Generate.on("h100-chat", "llama-3.1-8b"),), *conv,
                     rate=20.0 * rate_scale, slo=slo),
        RequestClass("rag", (Embed("cpu", "e5-base-v2"), rag_search,
                             Generate.on("a100-chat", "llama-3.1-8b")),
                     TokenLengths.of(200, 0.5), TokenLengths.of(200, 1.0),
                     rate=4.0 * rate_scale, slo=slo),
        RequestClass("code", (Generate((Target("llama-3.1-70b", prefill_pool="mi300x-prefill",
                                               decode_pool="h100-decode",
                                               link="IB-NDR-400"),)),), *code,
                     rate=2.0 * rate_scale, slo=slo),
        RequestClass("reason", (Generate.on("h200-reason", "qwen3-32b", thinking=3.0, rounds=2,
                                            round_delay=0.5, round_tokens=200),),
                     TokenLengths.of(600, 0.5), TokenLengths.of(200, 1.0),
                     rate=0.5 * rate_scale, slo=SLO(ttft=2.0, tpot=0.1)),
        RequestClass("routed", (Generate((Target("llama-3.1-8b", pool="h100-chat",
                                                 probability=0.3),
                                          Target("qwen2.5-7b", pool="l40s-small",
                                                 probability=0.7))),),
                     TokenLengths.of(300, 0.5), TokenLengths.of(100, 1.0),
                     rate=2.0 * rate_scale, slo=slo),
    )
    return Scenario("multi-pool", pools, classes,
                    "5 classes over 8 pools (benchmark case of issue 4)")
