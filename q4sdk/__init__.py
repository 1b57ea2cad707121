"""q4sdk: post-training INT4 quantization to bit-exact, freestanding C for microcontrollers."""

from q4sdk.errors import Q4Error

__version__ = "0.1.0"


def quantize(*args, **kwargs):
    """See :func:`q4sdk.api.quantize`."""
    from q4sdk.api import quantize as _quantize

    return _quantize(*args, **kwargs)


__all__ = ["Q4Error", "quantize", "__version__"]
