"""Generated schematic lesion images for training and testing the demonstration model.

The images are drawings made from textbook descriptions of non-severe drug eruptions and
of SJS/TEN, not clinical photographs. This package uses numpy and Pillow only, never
TensorFlow.
"""
