"""User-facing errors. The CLI prints ``str(err)`` on one line and exits non-zero."""


class Q4Error(Exception):
    """An error caused by the user's input (model, data file, .q4 file, option), not by a bug.

    The message names the thing at fault: the node, the file, the field.
    """
