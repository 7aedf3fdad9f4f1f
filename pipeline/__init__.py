"""The science of psdwatch: image in, particles out.

Nothing here knows about the daemon, the store or the reports; the daemon calls
these functions, never the reverse.
"""

__version__ = "0.1.0"
