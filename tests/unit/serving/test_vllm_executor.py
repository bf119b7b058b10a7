"""Which vLLM executor a replica runs: one process for a CPU engine of world size one, with
every usable CPU but one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from modelgrid_serving.engines.vllm import run_model_in_engine_process, usable_cpus

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("backend", "world_size", "expected"),
    [("mp", 1, "uni"), ("mp", 2, "mp"), ("ray", 1, "ray"), ("uni", 1, "uni")],
)
def test_only_a_one_process_cpu_engine_runs_its_model_in_the_engine_process(
    backend: str, world_size: int, expected: str
) -> None:
    parallel = SimpleNamespace(distributed_executor_backend=backend, world_size=world_size)
    environ: dict[str, str] = {"OMP_NUM_THREADS": "1"}
    threads = run_model_in_engine_process(SimpleNamespace(parallel_config=parallel), environ, 16)
    assert parallel.distributed_executor_backend == expected
    if expected == backend:
        assert threads is None and environ == {"OMP_NUM_THREADS": "1"}
    else:
        assert threads == 15 and environ == {"OMP_NUM_THREADS": "15"}


def test_one_cpu_still_gets_one_thread() -> None:
    parallel = SimpleNamespace(distributed_executor_backend="mp", world_size=1)
    environ: dict[str, str] = {}
    assert run_model_in_engine_process(SimpleNamespace(parallel_config=parallel), environ, 1) == 1
    assert environ == {"OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [(None, "affinity"), ("max 100000", "affinity"), ("150000 100000", 1), ("50000 100000", 1)],
)
def test_usable_cpus_is_capped_by_a_container_cpu_limit(
    tmp_path: Path, cpu_max: str | None, expected: object
) -> None:
    import os

    if cpu_max is not None:
        (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    affinity = len(os.sched_getaffinity(0))
    want = affinity if expected == "affinity" else min(affinity, expected)  # type: ignore[type-var]
    assert usable_cpus(tmp_path) == want
