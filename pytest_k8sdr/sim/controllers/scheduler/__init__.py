"""The scheduler (kube-scheduler with its default profile), laid out as upstream's.

- `scheduler`: the controller, its cache and event handlers, one scheduling cycle
  (pkg/scheduler/scheduler.go, schedule_one.go, eventhandlers.go, backend/cache);
- `queue`: activeQ, backoffQ and unschedulablePods (backend/queue/scheduling_queue.go);
- `framework`: extension points, Status, NodeInfo/PodInfo, the FitError message
  (framework/interface.go, types.go, runtime/framework.go); its docstring says how to add a
  plugin;
- `plugins`: one module per upstream plugin and the default profile (framework/plugins/*).

Not modelled: volumes (until VolumeBinding lands), host ports, image locality, scheduling
gates, extenders, multiple profiles, asynchronous binding, Permit.
"""

from __future__ import annotations

from pytest_k8sdr.sim.controllers.scheduler.scheduler import (
    COMPONENT,
    NAME,
    Scheduler,
    num_feasible_nodes_to_find,
)

__all__ = ["COMPONENT", "NAME", "Scheduler", "num_feasible_nodes_to_find"]
