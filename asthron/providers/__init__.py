"""The contracts plugins implement: abstract base classes and frozen value objects, no vendor code.

Plugins import from here and from `asthron.hookspecs`; the core imports no plugin.
"""
