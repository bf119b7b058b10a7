"""Test helpers that check what we produce the way a Kubernetes API server would.

- :mod:`fidelity_support.structural`: the API server's rules for a CRD's OpenAPI schema
  (structural schema, ``x-kubernetes-*`` extensions, defaults, forbidden keywords).
- :mod:`fidelity_support.admission`: what the API server does to a custom object on create:
  prune unknown fields, apply defaults, validate against the schema and run the CEL rules.
"""
