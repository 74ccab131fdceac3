"""The batch group: Jobs and CronJobs (pkg/registry/batch/{job,cronjob}/strategy.go).

Defaults as pkg/apis/batch/v1/defaults.go, the selector and pod labels a Job gets unless
`manualSelector` (strategy.go generateSelector), and the essentials of
pkg/apis/batch/validation (restart policy, counts, immutable template and selector, a
parseable schedule and time zone). The controllers are `controllers.job` and
`controllers.cronjob`.
"""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.cron import CronError, parse_schedule, zone
from pytest_k8sdr.sim.apimachinery.selectors import selector_matches
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.podspec import default_pod_spec, validate_pod_spec
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    ResetStatus,
    Resource,
    cause,
    immutable,
    required,
    unsupported,
)

__all__ = ["CONTROLLER_UID_LABEL", "JOB_NAME_LABEL", "RESOURCES"]

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
# The labels before the batch.kubernetes.io prefix, still set (strategy.go generateSelector).
_LEGACY_UID_LABEL = "controller-uid"
_LEGACY_NAME_LABEL = "job-name"
_RESTART_POLICIES = ("OnFailure", "Never")
_COMPLETION_MODES = ("NonIndexed", "Indexed")
_CONCURRENCY = ("Allow", "Forbid", "Replace")
_REPLACEMENT = ("TerminatingOrFailed", "Failed")
# validation.go: a CronJob's name makes its Jobs' names (name + "-" + 11 digits).
_CRONJOB_NAME_MAX = 52


def _non_negative(spec: JSON, field: str, path: str) -> list[Cause]:
    value = spec.get(field)
    if value is None:
        return []
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return [
            cause(f"{path}.{field}", f"Invalid value: {value}: must be greater than or equal to 0")
        ]
    return []


def default_job_spec(spec: JSON) -> None:
    """SetDefaults_Job: parallelism and completions 1, backoffLimit 6, NonIndexed."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimitPerIndex") is None:
        spec.setdefault("backoffLimit", 6)
    else:
        spec.setdefault("backoffLimit", 2147483647)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault(
        "podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    )


def _validate_job_template(spec: JSON, path: str) -> list[Cause]:
    """ValidateJobSpec's checks on one JobSpec at `path`."""
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    causes = validate_pod_spec(pod_spec, f"{path}.template.spec")
    policy = pod_spec.get("restartPolicy")
    if policy not in _RESTART_POLICIES:
        causes.append(unsupported(f"{path}.template.spec.restartPolicy", policy, _RESTART_POLICIES))
    for field in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        causes += _non_negative(spec, field, path)
    causes += _non_negative(spec, "ttlSecondsAfterFinished", path)
    mode = spec.get("completionMode")
    if mode is not None and mode not in _COMPLETION_MODES:
        causes.append(unsupported(f"{path}.completionMode", mode, _COMPLETION_MODES))
    if mode == "Indexed" and spec.get("completions") is None:
        causes.append(required(f"{path}.completions", "when completion mode is Indexed"))
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None and replacement not in _REPLACEMENT:
        causes.append(unsupported(f"{path}.podReplacementPolicy", replacement, _REPLACEMENT))
    return causes


class JobStrategy(ResetStatus):
    """jobStrategy: a generated selector, the defaults, an immutable template."""

    def prepare_for_create(self, obj: JSON) -> None:
        """An empty status; the selector and its labels unless manualSelector."""
        super().prepare_for_create(obj)
        spec = obj.setdefault("spec", {})
        if spec.get("manualSelector"):
            return
        meta = obj["metadata"]
        template = spec.setdefault("template", {})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        uid, name = str(meta["uid"]), str(meta.get("name", ""))
        labels.setdefault(CONTROLLER_UID_LABEL, uid)
        labels.setdefault(JOB_NAME_LABEL, name)
        labels.setdefault(_LEGACY_UID_LABEL, uid)
        labels.setdefault(_LEGACY_NAME_LABEL, name)
        spec.setdefault("selector", {"matchLabels": {CONTROLLER_UID_LABEL: uid}})

    def default(self, obj: JSON) -> None:
        """SetDefaults_Job and the pod template's defaults."""
        spec = obj.setdefault("spec", {})
        default_job_spec(spec)
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {})
        default_pod_spec(template.setdefault("spec", {}))

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """ValidateJob / ValidateJobUpdate (the essentials)."""
        spec = obj.get("spec") or {}
        causes = _validate_job_template(spec, "spec")
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        if not selector:
            causes.append(required("spec.selector"))
        elif not selector_matches(selector, labels):
            causes.append(
                cause(
                    "spec.template.metadata.labels",
                    f"Invalid value: {labels}: `selector` does not match template `labels`",
                )
            )
        if old is not None:
            old_spec = old.get("spec") or {}
            if selector != old_spec.get("selector"):
                causes.append(immutable("spec.selector", selector))
            if spec.get("completions") != old_spec.get("completions"):
                causes.append(immutable("spec.completions", spec.get("completions")))
            # The template may change only while the Job is suspended (ValidateJobSpecUpdate).
            if spec.get("template") != old_spec.get("template") and not old_spec.get("suspend"):
                causes.append(cause("spec.template", "Invalid value: field is immutable"))
        return causes


class CronJobStrategy(ResetStatus):
    """cronJobStrategy: SetDefaults_CronJob, a valid schedule, a job template that can run."""

    def default(self, obj: JSON) -> None:
        """Allow, not suspended, keep 3 successful and 1 failed Job; the pod defaults."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_template = spec.setdefault("jobTemplate", {})
        job_template.setdefault("metadata", {})
        template = job_template.setdefault("spec", {}).setdefault("template", {})
        template.setdefault("metadata", {})
        default_pod_spec(template.setdefault("spec", {}))

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """ValidateCronJob{Create,Update} (the essentials)."""
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        name = str((obj.get("metadata") or {}).get("name") or "")
        if old is None and len(name) > _CRONJOB_NAME_MAX:
            causes.append(
                cause(
                    "metadata.name",
                    f'Invalid value: "{name}": must be no more than {_CRONJOB_NAME_MAX} characters',
                )
            )
        schedule = spec.get("schedule")
        if not schedule:
            causes.append(required("spec.schedule"))
        else:
            try:
                parse_schedule(str(schedule))
            except CronError as exc:
                causes.append(cause("spec.schedule", f'Invalid value: "{schedule}": {exc}'))
            if "TZ" in str(schedule):
                causes.append(
                    cause(
                        "spec.schedule",
                        f'Invalid value: "{schedule}": cannot use TZ or CRON_TZ in schedule, '
                        "use timeZone field instead",
                    )
                )
        tz = spec.get("timeZone")
        if tz is not None:
            try:
                zone(str(tz))
            except CronError:
                causes.append(
                    cause("spec.timeZone", f'Invalid value: "{tz}": unknown time zone {tz}')
                )
        policy = spec.get("concurrencyPolicy")
        if policy not in _CONCURRENCY:
            causes.append(unsupported("spec.concurrencyPolicy", policy, _CONCURRENCY))
        for field in (
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ):
            causes += _non_negative(spec, field, "spec")
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        causes += _validate_job_template(job_spec, "spec.jobTemplate.spec")
        return causes


RESOURCES = (
    Resource(
        ResourceType(
            "batch",
            "v1",
            "jobs",
            "Job",
            True,
            (),
            frozenset({"status"}),
            # pkg/registry/batch/job/strategy.go JobToSelectableFields.
            frozenset({"status.successful"}),
        ),
        JobStrategy,
    ),
    Resource(
        ResourceType("batch", "v1", "cronjobs", "CronJob", True, ("cj",), frozenset({"status"})),
        CronJobStrategy,
    ),
)
