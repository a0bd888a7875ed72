"""vaebench: variational autoencoders on binarised MNIST, reproducibly.

Importing the package asks MKL for thread-count-independent results before torch is loaded
by any of its modules (see vaebench/numerics.py).
"""

from vaebench.numerics import request_strict_mkl

request_strict_mkl()
