# The two commands a newcomer needs (see README.md): `make up` and `make test`.
# .ci/venv.sh builds the environment once (cached under ~/.cache/modelgrid) and prints its path.
# .ci/platform.sh chooses, per machine, what the environment holds and the tiny example `make up`
# serves by default: vLLM's CPU build on Linux, MLX on a Mac. On a machine it has no environment
# for, .ci/venv.sh stops and says why.
ifndef MODEL
MODEL := $(shell .ci/platform.sh model 2>/dev/null)
endif
PYTEST_ARGS ?=

.PHONY: up test test-unit crd dashboards images grpc

## Install and serve MODEL on http://127.0.0.1:8000 (Ctrl-C stops it)
up:
	venv=$$(.ci/venv.sh) && exec "$$venv/bin/modelgrid" up $(MODEL)

## Run every test tier this machine can run (unit, integration, e2e)
test:
	venv=$$(.ci/venv.sh) && "$$venv/bin/python" -m pytest $(PYTEST_ARGS)

## Only the fast tier (seconds)
test-unit:
	venv=$$(.ci/venv.sh) && "$$venv/bin/python" -m pytest -m unit $(PYTEST_ARGS)

## Build the images the chart and the operator name, without a Docker engine (images/README.md)
IMAGES ?= modelgrid serving-cpu
images:
	.ci/images.sh build $(IMAGES)

## Regenerate crds/ and the chart's copy from the typed API
crd:
	venv=$$(.ci/venv.sh) && "$$venv/bin/modelgrid" crd > crds/modelgrid.io_inferencemodels.yaml
	cp crds/modelgrid.io_inferencemodels.yaml charts/modelgrid/crds/

## Regenerate the gateway's gRPC messages from its .proto (pinned grpcio-tools: tools/grpc_code.py)
grpc:
	python3 tools/grpc_code.py

## Regenerate the Grafana dashboards of the chart (built in code: tools/dashboards.py)
dashboards:
	venv=$$(.ci/venv.sh) && "$$venv/bin/python" tools/dashboards.py charts/modelgrid/dashboards
