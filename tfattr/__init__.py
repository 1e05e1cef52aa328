"""tfattr: facial attribute transfer in TensorFlow/Keras (five published methods, one codebase).

Importing `tfattr` is cheap: it loads no TensorFlow, models or serving dependencies.
"""

__version__ = "0.1.0"
