"""How notebook 08 shows a table: pandas' Styler, readable at laptop width (1,366 px).

    table(df)                                       metrics to 3 decimals, – where missing
    table(errors, wrap=["sentence1", "sentence2"],  long text wraps inside its own column;
          labels=["gold", "pred"])                  a class 3.0 reads 3, an STS score 3.662

Every other cell stays on one line, so a row of the results table is one line of text.
In Jupyter a table is HTML; its text form (nbval's comparison, a terminal) holds the same cells.
"""
from __future__ import annotations

import hashlib
import math
from numbers import Integral, Real

import pandas as pd
from pandas.api.types import is_scalar
from pandas.io.formats.style import Styler

MISSING = "–"  # an en dash: a number the run or the seed report does not give
CSS = [  # compact: small padding, no wrapping but where a column asks for it
    {"selector": "th, td", "props": "white-space: nowrap; padding: 2px 5px;"},
    {"selector": "th", "props": "text-align: center;"},
]


def _missing(x) -> bool:
    return x is None or (is_scalar(x) and pd.isna(x))


def _number(digits: int, label: bool = False):
    """A formatter: an integer as an integer, a float to `digits` decimals; in a label column
    (a class or a score) a whole number is a class: 3.0 reads 3, 1.8 reads 1.800."""
    def fmt(x) -> str:
        if _missing(x):
            return MISSING
        if isinstance(x, Integral):  # bool too
            return str(x)
        if isinstance(x, Real) and math.isfinite(x):
            return f"{x:.0f}" if label and float(x).is_integer() else f"{x:.{digits}f}"
        return str(x)
    return fmt


def _formatters(df, digits, per_column, labels) -> dict:
    """column -> the function that writes each of its cells."""
    return {c: _number(per_column.get(c, digits), label=c in labels) for c in df.columns}


def _is_text(column) -> bool:
    """Words (left-aligned), not numbers written as text ('0.253 ± 0.000', '+0.089')."""
    return column.map(lambda x: isinstance(x, str) and any(ch.isalpha() for ch in x)).any()


class Table:
    """A table for the notebook: styled HTML in Jupyter, aligned text everywhere else."""

    def __init__(self, styler: Styler, text: str):
        self.styler, self.text = styler, text

    def _repr_html_(self) -> str:
        return self.styler.to_html()

    def __repr__(self) -> str:
        return self.text


def table(df, digits: int = 3, per_column: dict | None = None, wrap=(), labels=(),
          index: bool = False) -> Table:
    """`df` as a Table: floats to `digits` decimals (`per_column`: {column: decimals} where
    another precision reads better), integers as integers (and whole numbers in the `labels`
    columns), missing values as –; text columns left-aligned, numbers right; only the `wrap`
    columns wrap (at word breaks); the index hidden unless `index`. The HTML is the same on
    every run (its id is made from the columns), so nbval can compare it."""
    fmts = _formatters(df, digits, per_column or {}, set(labels))
    key = repr((list(map(str, df.columns)), list(wrap), index)).encode()
    styler = Styler(df, uuid=hashlib.sha1(key).hexdigest()[:8], cell_ids=False)
    styler.format(fmts)
    props = {c: [{"selector": "td", "props": "text-align: left;"}] for c in df.columns
             if _is_text(df[c])}
    for c in wrap:
        props[c] = [{"selector": "td", "props": "text-align: left; white-space: normal;"
                                                 " min-width: 16em;"}]
    styler.set_table_styles(CSS).set_table_styles(props, overwrite=False)
    if not index:
        styler.hide(axis="index")
    cells = pd.DataFrame({c: df[c].map(fmts[c]) for c in df.columns}, index=df.index)
    return Table(styler, cells.to_string(index=index, max_colwidth=None))
