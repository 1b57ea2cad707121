"""The C code generator: a ``QModel`` -> freestanding C99 sources, the kernel choice per op and the
arena plan."""
