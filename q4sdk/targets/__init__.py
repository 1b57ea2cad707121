"""Real targets: board descriptions, host builds through cffi, firmware projects and their runs
under QEMU."""
