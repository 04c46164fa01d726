"""3D-CNN classification of dFC windows (``model``: VGG3D, ``baseline``: PCA + logistic).

Import-light: nothing is imported here; torch is imported by ``model`` only.
"""
