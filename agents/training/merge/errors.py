"""Errors raised by the merge engine; every message names the problem."""


class MergeError(Exception):
    """A merge cannot start or cannot go on (bad config, mismatched models, ...)."""


class MergeCancelled(MergeError):
    """The merge was interrupted; the half-written output has been removed."""
