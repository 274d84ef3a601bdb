"""MkDocs hook: pages generated from the code, so they cannot drift from it.

A page holding one of the markers below gets it replaced at build time:

* ``<!-- crackkit:parameters -->``: the run parameters, from ``RunConfig``'s fields
  (:func:`crackkit.parameters.parameters_markdown`);
* ``<!-- crackkit:presets -->``: a table of what each preset sets;
* ``<!-- crackkit:cli -->``: every command and its options, from the argparse parser
  (:func:`cli_reference`).
"""

from __future__ import annotations

import argparse

MARKERS = ("parameters", "presets", "cli")


def _cell(text: object) -> str:
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\n", " ")


def _commands(parser: argparse.ArgumentParser, prefix: str = "crackkit"):
    """(command line, parser) for every command that takes options, depth first."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for action in subs:
        for name, sub in action.choices.items():
            yield from _commands(sub, f"{prefix} {name}")


def _option(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest.upper()}`"
    names = ", ".join(f"`{s}`" for s in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar
    if metavar is None and action.choices:
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    elif metavar is None:
        metavar = action.dest.upper()
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    return f"{names} `{metavar}`"


def cli_reference() -> str:
    """A section per command: its help line and a table of its options (hidden ones, the
    deprecated spellings, left out; CHANGELOG.md lists them)."""
    from crackkit.cli import build_parser

    parser = build_parser()
    top = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                top[f"crackkit {choice.dest}"] = choice.help
                sub = action.choices[choice.dest]
                for inner in sub._actions:
                    if isinstance(inner, argparse._SubParsersAction):
                        for c in inner._choices_actions:
                            top[f"crackkit {choice.dest} {c.dest}"] = c.help
    out = ["| command | what it does |", "| --- | --- |"]
    out += [f"| `{cmd}` | {_cell(top.get(cmd, ''))} |" for cmd, _ in _commands(parser)]
    for cmd, sub in _commands(parser):
        out += ["", f"## `{cmd}`", "", _cell(top.get(cmd, "")), ""]
        rows = [
            a
            for a in sub._actions
            if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
        ]
        out += ["| option | default | what it does |", "| --- | --- | --- |"]
        for a in rows:
            default = "" if a.default in (None, False, argparse.SUPPRESS) else f"`{a.default}`"
            text = (a.help or "").replace("%(default)s", str(a.default))
            out.append(f"| {_option(a)} | {default} | {_cell(text)} |")
    return "\n".join(out) + "\n"


def presets_table() -> str:
    from crackkit.config import PRESETS

    lines = ["| preset | what it sets |", "| --- | --- |"]
    for name, values in PRESETS.items():
        sets = ", ".join(f"`{k}={v!r}`" for k, v in values.items())
        lines.append(f"| `{name}` | {_cell(sets)} |")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - mkdocs API
    if "<!-- crackkit:" not in markdown:
        return markdown
    from crackkit.parameters import parameters_markdown

    generated = {
        "parameters": parameters_markdown,
        "presets": presets_table,
        "cli": cli_reference,
    }
    for name, render in generated.items():
        markdown = markdown.replace(f"<!-- crackkit:{name} -->", render())
    return markdown
