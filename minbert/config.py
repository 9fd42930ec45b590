"""One config style for every run: a dataclass of plain fields, and a command line made from it.

    @dataclass
    class TrainConfig: lr: float = 1e-5; pooling: str = "pooler"; ...
    parser = argparse.ArgumentParser(); add_fields(parser, TrainConfig)
    config = from_args(TrainConfig, parser.parse_args())      # --lr 5e-5 --pooling mean

Field `foo_bar` becomes the flag `--foo-bar` with the field's type and, as its help, the
comment beside the field in the class (one source: what the reader of the class sees is what
`--help` says); bools get `--foo/--no-foo`; tuple fields take one or more values. Each run saves its config (asdict)
beside its results, so the command line, the notebook call and the saved file say the same.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import re
import sys
import typing
import warnings


def check_choice(name: str, value, choices):
    """Raise a ValueError naming the field, the value and the choices if value is not one."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def field_help(cls) -> dict:
    """{field: the comment on its line in the class source} (`name: type = value  # help`)."""
    pattern = re.compile(r"^\s+(\w+): [^#\n]*#\s*(.+)$", re.M)
    return dict(pattern.findall(inspect.getsource(cls)))


def add_fields(parser: argparse.ArgumentParser, cls, choices: dict | None = None,
               aliases: dict | None = None) -> argparse.ArgumentParser:
    """One flag per field of the dataclass `cls` (defaults from the dataclass). `choices`
    maps a field to its allowed values, `aliases` a field to extra flag names."""
    choices, aliases, helps = choices or {}, aliases or {}, field_help(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flags = ["--" + f.name.replace("_", "-"), *aliases.get(f.name, ())]
        typ = hints[f.name]
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        base = typing.get_origin(typ) or typ if not args else args[0]
        if type(None) in typing.get_args(typ) and base is not tuple:  # `--lr none` -> None
            base = _or_none(base)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kw = dict(default=default, choices=choices.get(f.name), help=helps.get(f.name))
        if base is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
        elif base is tuple:
            parser.add_argument(*flags, nargs="+", **kw)
        else:
            parser.add_argument(*flags, type=base, **kw)
    return parser


def _or_none(typ):
    def parse(text: str):
        return None if text.lower() == "none" else typ(text)
    parse.__name__ = typ.__name__  # argparse names the type in its errors
    return parse


@contextlib.contextmanager
def one_line_warnings():
    """Warnings as one line on stderr ("DataWarning: ..."), without the line of package source
    Python prints under each: what a command-line user needs, not where it was raised."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda msg, cat, *_, **__: print(f"{cat.__name__}: {msg}",
                                                                file=sys.stderr)
        yield


def from_args(cls, namespace):
    """The dataclass `cls` from parsed arguments (other attributes of the namespace ignored)."""
    values = vars(namespace)
    fields = {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}
    for k, v in fields.items():
        if isinstance(v, list):
            fields[k] = tuple(v)
    return cls(**fields)
