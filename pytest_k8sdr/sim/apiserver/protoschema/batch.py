"""k8s.io/api batch/v1 (the specs `kubectl create job|cronjob` send; statuses are not sent)."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

MESSAGES: Messages = {
    "batch.Job": {1: ("metadata", "meta.ObjectMeta"), 2: ("spec", "batch.JobSpec")},
    "batch.JobSpec": {
        1: ("parallelism", "int!"),
        2: ("completions", "int!"),
        3: ("activeDeadlineSeconds", "int!"),
        4: ("selector", "meta.LabelSelector"),
        5: ("manualSelector", "bool!"),
        6: ("template", "core.PodTemplateSpec"),
        7: ("backoffLimit", "int!"),
        8: ("ttlSecondsAfterFinished", "int!"),
        9: ("completionMode", "string"),
        10: ("suspend", "bool!"),
        12: ("backoffLimitPerIndex", "int!"),
        13: ("maxFailedIndexes", "int!"),
        14: ("podReplacementPolicy", "string"),
        15: ("managedBy", "string"),
    },
    "batch.JobTemplateSpec": {1: ("metadata", "meta.ObjectMeta"), 2: ("spec", "batch.JobSpec")},
    "batch.CronJob": {1: ("metadata", "meta.ObjectMeta"), 2: ("spec", "batch.CronJobSpec")},
    "batch.CronJobSpec": {
        1: ("schedule", "string"),
        2: ("startingDeadlineSeconds", "int!"),
        3: ("concurrencyPolicy", "string"),
        4: ("suspend", "bool!"),
        5: ("jobTemplate", "batch.JobTemplateSpec"),
        6: ("successfulJobsHistoryLimit", "int!"),
        7: ("failedJobsHistoryLimit", "int!"),
        8: ("timeZone", "string!"),
    },
}

KINDS: Kinds = {
    ("batch/v1", "Job"): "batch.Job",
    ("batch/v1", "CronJob"): "batch.CronJob",
}
