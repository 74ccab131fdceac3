"""The simulated kube-apiserver.

Storage and watch cache, the resource registry, admission, and the HTTP layer (REST, watch
streams, discovery, tables, protobuf request bodies).
"""
