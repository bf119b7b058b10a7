"""The ``modelgrid`` command: one entry point over the product's processes.

- ``modelgrid up model.yaml``: serve an InferenceModel on this machine (embedded Ray + engine).
- ``modelgrid render model.yaml``: print every Kubernetes object the operator would apply.
- ``modelgrid crd``: print the InferenceModel CRD generated from the typed API.
- ``modelgrid operator``: run the kopf operator against the current cluster.
- ``modelgrid gateway``: one OpenAI endpoint over every model (static file and/or cluster).
- ``modelgrid dev tiny-model DIR``: generate the tiny test model (no download).

A package of its own because it composes both halves of the product (the operator's API and
renderers, serving's local mode and gateway): neither package imports the CLI, and each
subcommand imports what it runs only once it runs, so an image that installs one extra
(``modelgrid[gateway]``, ``modelgrid[operator]``) runs its subcommand without the others'
dependencies.
"""
