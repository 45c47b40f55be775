"""unit-eval: exact, reproducible evaluation of unsupervised image-to-image translation."""

__version__ = "0.1.0"
