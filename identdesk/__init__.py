"""identdesk: the composition root that wires signaling, media and the agent console."""

__version__ = "0.1.0"
