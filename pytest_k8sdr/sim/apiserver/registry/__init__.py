"""The resource registry: every served kind with its strategy, and the store that applies them.

`resources` lists the kinds (declared in the family modules `core`, `apps`, `discovery`,
`coordination`, `policy`), `store.Store` is the generic registry store, `eviction` the
pods/eviction subresource, `serviceallocator` the Service IP and port ranges.
"""
