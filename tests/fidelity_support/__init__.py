"""Test helpers that check what we produce the way a Kubernetes API server would.

- :mod:`fidelity_support.structural`: the API server's rules for a CRD's OpenAPI schema
  (structural schema, ``x-kubernetes-*`` extensions, defaults, forbidden keywords).
- :mod:`fidelity_support.admission`: what the API server does to a custom object on create:
  prune unknown fields, apply defaults, validate against the schema and run the CEL rules.
"""

SUPPORTED_KUBERNETES = ("1.28", "1.37")
"""Oldest and newest Kubernetes versions modelgrid supports. 1.28 is the first whose API server
keeps ``x-kubernetes-validations[].fieldPath``, which points CEL errors at the offending field."""
