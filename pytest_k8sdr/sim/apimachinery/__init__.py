"""What every simulated component shares, as upstream's k8s.io/apimachinery and k8s.io/api.

Resource types and watch events (`types`), API errors shaped as Status (`errors`), label and
field selectors (`selectors`), the three patch formats (`patch`), metav1 times (`clock`),
resource quantities and int-or-percent values (`quantity`), object metadata helpers (`meta`)
and well-known labels and taints (`wellknown`). It imports nothing else of the simulator but
`sim.errors`.
"""
