"""k8s.io/api storage/v1."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

MESSAGES: Messages = {
    "storage.StorageClass": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("provisioner", "string"),
        3: ("parameters", "map:string"),
        4: ("reclaimPolicy", "string"),
        5: ("mountOptions", "[]string"),
        6: ("allowVolumeExpansion", "bool!"),
        7: ("volumeBindingMode", "string"),
    },
}

KINDS: Kinds = {("storage.k8s.io/v1", "StorageClass"): "storage.StorageClass"}
