"""The kernel: money, ids, errors and invariants shared by every layer.

Nothing here performs I/O, reads the clock or the environment.
"""
