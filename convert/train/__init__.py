"""``cadr-train``: the reference trainer of the binary classifier behind a bundle.

It imports TensorFlow; nothing on the device side imports this package.
"""
