"""Parameter checking for papermill notebooks.

papermill injects ``-p`` values as a cell after the one tagged ``parameters``; it only warns on
an unknown name and checks no type. A notebook therefore opens with::

    guard = ParameterGuard(globals())      # before the parameters cell

and, straight after the parameters cell::

    cfg, opts = guard.config(globals(), extra=("run_dir",))

which collects every name the parameters cell and papermill's injected cell defined, refuses an
unknown one (listing the valid names) and builds a validated :class:`~crackkit.config.RunConfig`.
A notebook that uses only some run parameters names them (``fields=DATA_FIELDS``); the others
keep RunConfig's defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crackkit.config import ConfigError, field_names, make_config

__all__ = ["ParameterGuard"]


class ParameterGuard:
    """Remembers the names defined before the parameters cell."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self._before = set(namespace)

    def defined(self, namespace: Mapping[str, Any]) -> dict[str, Any]:
        """Names defined since the guard was made (IPython's ``_``-names excluded)."""
        return {
            k: v
            for k, v in namespace.items()
            if k not in self._before
            and not k.startswith("_")
            and k not in ("In", "Out")
            and not isinstance(v, ParameterGuard)
        }

    def config(
        self,
        namespace: Mapping[str, Any],
        *,
        fields: Iterable[str] | None = None,
        extra: Iterable[str] = (),
        config_fields: bool = True,
    ):
        """Validate the notebook's parameters.

        Args:
            namespace: the notebook's ``globals()``.
            fields: the RunConfig fields the notebook takes (default: all of them).
            extra: names the notebook takes besides the config fields (``run_dir``...).
            config_fields: whether the notebook takes RunConfig fields at all.

        Returns:
            ``(cfg, opts)``: the RunConfig (``None`` when ``config_fields`` is False) and a dict of
            the ``extra`` parameters.

        Raises:
            ConfigError: an unknown parameter name or a bad value; the message names it.
        """
        values = self.defined(namespace)
        if not config_fields:
            fields = set()
        else:
            fields = set(field_names() if fields is None else fields)
            unknown_fields = sorted(fields - set(field_names()))
            if unknown_fields:
                raise ConfigError(f"no such run parameter(s): {', '.join(unknown_fields)}")
        extra = tuple(extra)
        unknown = sorted(set(values) - fields - set(extra))
        if unknown:
            valid = sorted(fields | set(extra))
            raise ConfigError(
                f"unknown notebook parameter(s) {', '.join(map(repr, unknown))}; "
                f"valid parameters: {', '.join(valid)}"
            )
        opts = {k: values[k] for k in extra if k in values}
        cfg = (
            make_config({k: v for k, v in values.items() if k in fields}) if config_fields else None
        )
        return cfg, opts
