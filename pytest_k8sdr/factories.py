"""What the factory fixtures are, as Protocols: editors and type checkers show their keywords.

Annotate a test's parameters with them::

    def test_it(make_workload: MakeWorkload, make_pdb: MakePDB) -> None:
        web = make_workload("web", replicas=4)
        make_pdb(web, min_available=3)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pytest_k8sdr.lb.frontend import Frontend
from pytest_k8sdr.workloads import DisruptionBudget, Workload


class MakeWorkload(Protocol):
    """`make_workload`: create a workload in the test's namespace and wait until it is Ready."""

    def __call__(
        self,
        name: str,
        *,
        kind: str = "Deployment",
        replicas: int = 3,
        service: str | None = "NodePort",
        image: str = ...,
        labels: Mapping[str, str] | None = None,
        termination_grace_period: int = 2,
        pod_management_policy: str = "Parallel",
        storage_class: str | None = None,
        storage_size: str = "1Gi",
        wait: bool = True,
        timeout: float | None = None,
    ) -> Workload:
        """A Deployment, StatefulSet or DaemonSet, with a Service of type `service` (or none).

        `storage_class`: a StatefulSet's claim per replica (`data-<pod>`) of that class.
        """
        ...


class MakePDB(Protocol):
    """`make_pdb`: a PodDisruptionBudget over a workload's pods, deleted at teardown."""

    def __call__(
        self,
        workload: Workload,
        *,
        min_available: int | str | None = None,
        max_unavailable: int | str | None = None,
        name: str | None = None,
    ) -> DisruptionBudget:
        """Exactly one of `min_available` and `max_unavailable` (a count or a percentage)."""
        ...


class MakeLB(Protocol):
    """`make_lb`: the external load balancer in front of a workload's NodePort."""

    def __call__(self, workload: Workload) -> Frontend:
        """The load balancer (`.lb`), the URL through it (`.url`) and its probe (`.probe()`)."""
        ...
