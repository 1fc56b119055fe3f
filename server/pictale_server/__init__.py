"""pictale reference server: a FastAPI app that turns pictures into stories."""

PROTOCOL_VERSION = "1"
__version__ = "0.1.0"
