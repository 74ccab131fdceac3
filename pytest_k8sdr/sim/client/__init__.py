"""The one client of the simulated cluster: REST, list-watch informers, their cache.

`rest.ApiClient` (aiohttp, retried, gated for partitions), `informer.Informer` (list then
watch over HTTP into a `cache.Cache`), `blocking.BlockingClient` (the same from synchronous
code: the launcher), `kubeconfig` (what the control plane writes and clients read). Node
agents, the launcher and the in-process controllers (through `Cache`) share it.
"""
