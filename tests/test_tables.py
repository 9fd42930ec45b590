"""minbert.report.tables.table: the cells it writes, by hand; its HTML the same on every run."""
import re

import numpy as np
import pandas as pd

from minbert.report.tables import table


def frame():
    return pd.DataFrame({"row": [1, 12], "name": ["pcgrad", "adjusted"],
                         "sst": [0.45612, np.nan], "seed sst": ["0.669", None],
                         "gold": [3.0, 1.8], "confidence": [0.99941, None],
                         "learns": [True, False], "sentence1": ["How can I invent?", "x " * 60]})


def cells(html: str) -> list:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>.*?</td>", html)]


def test_cells_by_hand():
    t = table(frame(), per_column={"confidence": 4}, labels=["gold"], wrap=["sentence1"])
    html = t._repr_html_()
    first, second = cells(html)[:8], cells(html)[8:12]
    assert first == ["1", "pcgrad", "0.456", "0.669", "3", "0.9994", "True", "How can I invent?"]
    assert second == ["12", "adjusted", "–", "–"]  # missing numbers and text alike
    assert cells(html)[12:14] == ["1.800", "–"]  # a label that is not a whole number: 3 decimals
    assert "NaN" not in html and "None" not in html
    assert "row0" not in re.findall(r"<th[^>]*>", html)[0]  # no index column
    # the text form holds the same cells, whole (no 50- or 70-character cut)
    assert str(t).split("\n")[1].split()[:7] == first[:7]
    assert "x " * 59 + "x" in str(t) and "NaN" not in str(t)


def test_only_wrap_columns_wrap_and_the_html_is_the_same_every_time():
    a, b = table(frame(), wrap=["sentence1"]), table(frame(), wrap=["sentence1"])
    html = a._repr_html_()
    assert html == b._repr_html_()  # nbval compares it in # NBVAL_CHECK_OUTPUT cells
    uuid = re.search(r'<table id="T_(\w+)"', html).group(1)
    assert re.search(rf"#T_{uuid}\s+td\s*{{[^}}]*white-space: nowrap", html)
    col = list(frame().columns).index("sentence1")
    assert re.search(rf"#T_{uuid} td.col{col} {{[^}}]*white-space: normal", html)
    # words left-aligned; numbers, and numbers written as text, right (the default)
    left = set(re.findall(r"td\.col(\d+) {\s*text-align: left", html))
    assert left == {"1", "7"}  # name, sentence1 (learns holds booleans, not words)
    assert table(frame())._repr_html_() != html  # another layout, another id


def test_two_level_header_and_integer_columns():
    df = pd.DataFrame([[2, "0.491 ± 0.010", None]],
                      columns=pd.MultiIndex.from_tuples([("row", ""), ("SST acc", "ours"),
                                                         ("SST acc", "seed")]))
    html = table(df)._repr_html_()
    assert 'colspan="2">SST acc</th>' in html
    assert cells(html) == ["2", "0.491 ± 0.010", "–"]
