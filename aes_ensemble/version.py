"""The package's version, in a module of its own so that files recording it (bundles, stack
models) need not import the front door."""

__version__ = "0.1.0"
