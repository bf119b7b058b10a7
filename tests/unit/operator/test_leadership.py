"""Leader election's settings: a bad combination is refused with the value at fault, before the
election library would exit the process over it (it calls ``sys.exit``)."""

from __future__ import annotations

import argparse

import pytest
from modelgrid_cli.main import build_parser
from modelgrid_cli.operator import _election
from modelgrid_operator.leadership import Election, default_identity

pytestmark = pytest.mark.unit


def test_client_go_defaults_are_valid_and_requests_time_out_within_the_renew_deadline() -> None:
    election = Election(namespace="modelgrid-system")
    assert (election.lease_seconds, election.renew_seconds, election.retry_seconds) == (15, 10, 2)
    assert election.name == "modelgrid-operator"
    assert 0 < election.request_timeout < election.renew_seconds


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "says"),
    [
        (10, 10, 2, "lease duration 10 s must exceed the renew deadline (10 s)"),
        (15, 2, 2, "renew deadline 2 s must exceed 1.2 x the retry period (2 s)"),
        (15, 10, 0, "retry period 0 s: at least 1 s"),
    ],
)
def test_a_holder_that_could_outlive_its_lease_is_refused(
    lease: int, renew: int, retry: int, says: str
) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        Election(namespace="ns", lease_seconds=lease, renew_seconds=renew, retry_seconds=retry)


def test_a_lease_name_the_api_server_would_refuse_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="Lease name 'Op_Lease': not a DNS subdomain"):
        Election(namespace="ns", name="Op_Lease")


def test_each_process_is_a_new_candidate() -> None:
    first, second = default_identity(), default_identity()
    assert first != second
    assert first.rsplit("_", 1)[0] == second.rsplit("_", 1)[0]  # the pod's name, then a suffix


def _parse(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["operator", *flags])


def test_cli_flags_become_the_election() -> None:
    election = _election(
        _parse(
            "--leader-elect",
            "--lease-namespace=ops",
            "--lease-name=mg",
            "--lease-duration=30",
            "--renew-deadline=20",
            "--retry-period=4",
        )
    )
    assert (election.namespace, election.name) == ("ops", "mg")
    assert (election.lease_seconds, election.renew_seconds, election.retry_seconds) == (30, 20, 4)


def test_cli_refuses_a_bad_election_as_a_usage_error() -> None:
    with pytest.raises(SystemExit, match="modelgrid operator: lease duration 5 s must exceed"):
        _election(_parse("--leader-elect", "--lease-namespace=ops", "--lease-duration=5"))
