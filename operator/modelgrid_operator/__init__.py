"""modelgrid's control plane: the InferenceModel API, its CRD, pure renderers of the
Kubernetes objects that serve a model, and the kopf operator that applies them."""

__version__ = "0.1.0"
