"""Out-of-memory detection: the one rule the evaluation and the worker pool share.

An exception means the process ran out of memory, on a GPU or on the CPU, when it is

- ``torch.OutOfMemoryError`` (CUDA; also raised as ``torch.cuda.OutOfMemoryError``);
- ``MemoryError`` (Python's own allocation failures), or an ``OSError`` with ``errno`` ENOMEM;
- a ``RuntimeError`` whose message holds one of :data:`OOM_PHRASES`, compared case-insensitively: torch's CPU
  allocator (``DefaultCPUAllocator: can't allocate memory: you tried to allocate … bytes``), cuBLAS and cuDNN
  allocation failures some kernels raise untyped, and other backends' "out of memory".

torch is not imported here (it is looked up in ``sys.modules``), so ``workers`` can use this cheaply.
"""

from __future__ import annotations

import errno
import sys

OOM_PHRASES: tuple[str, ...] = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed",
                                "can't allocate memory", "cannot allocate memory", "not enough memory",
                                "failed to allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True when ``exc`` says the process ran out of memory (see the module doc)."""
    torch = sys.modules.get("torch")
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if (oom_type is not None and isinstance(exc, oom_type)) or isinstance(exc, MemoryError):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    return isinstance(exc, RuntimeError) and any(phrase in str(exc).lower() for phrase in OOM_PHRASES)
