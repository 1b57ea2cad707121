"""One torch thread for the quantizer: the same float sums, hence the same ``.q4`` bytes, whatever
the machine's thread count.

Torch splits reductions (means, dot products, the gradients of refinement) over its intra-op
threads, so their float results, and through them scales, zero points and rounding choices,
depend on the thread count. ``quantize_graph`` therefore runs on one thread. On the 2-core
machines this was measured on it is also faster: the quantizer's many small ops gain nothing
from threads, and on a loaded machine every op waits for a descheduled worker.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int = 1):
    """Run the block with ``n`` torch intra-op threads, restoring the previous count after."""
    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)
