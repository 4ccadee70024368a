"""cadr model-engineering side: int8 conversion, validation, bundle writing and signing.

Importing this package does not import TensorFlow; the modules that need it import it
themselves, so the signing and packaging commands run without it.
"""

__version__ = "0.1.0"
