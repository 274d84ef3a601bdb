"""Old command-line spellings: accepted, with a warning that names the new form.

crackkit 0.2 renamed options so that one concept has one name in every command (see
CHANGELOG.md). The old names keep working until crackkit 1.0 through :class:`DeprecatedOption`,
an argparse action hidden from ``--help`` that stores into the new option's ``dest`` and calls
:func:`warn_deprecated`.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["DeprecatedOption", "warn_deprecated", "REMOVED_IN"]

#: The version whose command line drops the deprecated spellings.
REMOVED_IN = "1.0"


def warn_deprecated(old: str, new: str) -> None:
    """Tell the user, on stderr, that ``old`` is deprecated and ``new`` replaces it."""
    print(
        f"crackkit: warning: {old} is deprecated and will be removed in crackkit {REMOVED_IN}; "
        f"use {new}",
        file=sys.stderr,
    )


class DeprecatedOption(argparse.Action):
    """An old spelling of an option: stores into the new option's ``dest`` and warns naming
    ``new``. With ``nargs=0`` it stores ``const`` (a flag). Hidden from ``--help``."""

    def __init__(self, option_strings, dest, *, new: str, nargs=None, const=None, **kwargs):
        self.new = new
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, nargs=nargs, const=const, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn_deprecated(option_string or self.dest, self.new)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
