"""The node agent: the kubelet and kube-proxy stand-ins of one simulated node, one process.

As upstream's kubelet is split: `kubelet` (lifecycle and status loop), `registration`,
`lease`, `nodestatus`, `podworkers` and `podstatus`, `runtime` (the container runtime),
`proxy` (kube-proxy), `hollow` (many kubelets in one process), `agent` and `options` (the
process), `control` (its control socket's client). Run it as `python -m pytest_k8sdr.sim.node`.
"""
