"""modelgrid's data plane: the OpenAI protocol, the engines (vLLM, MLX), the Ray Serve
application that the operator deploys, the gateway and the local `modelgrid up` mode.

Nothing here imports the operator: the operator renders an :class:`~modelgrid_serving.config.AppConfig`
into the RayService's Serve config, and this package only reads that contract.
"""

__version__ = "0.1.0"
