"""Asthron: a self-hosted AI chat widget platform for agencies and their clients."""
__version__ = "0.1.0"
