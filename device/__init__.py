"""cadr device side: bundle contract, image loading, int8 inference, records and the camera app.

This package never imports TensorFlow. The converter (``cadr_convert``) imports it for the
shared bundle contract, never the reverse.
"""

__version__ = "0.1.0"
