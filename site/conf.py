"""Sphinx configuration of the course's website (site/build.py writes the sources it reads).

Offline by construction: the theme (sphinx-book-theme, on pydata-sphinx-theme: its fonts
and scripts are in the wheel), MathJax (sphinx-mathjax-offline copies it into _static) and
the search index are all local files; notebooks are rendered as run, never executed here.

Why Sphinx with myst-nb and not Jupyter Book 2 (mystmd), its successor: the jupyter-book 2
wheel is a Node.js program (it needs `node`, and offers to download one through nodeenv),
and its HTML build downloads the site theme from the MyST templates API at build time
(mystmd issues #207 and #1451 ask for an offline build); `make site` must fetch nothing.
myst-nb is the same project's Sphinx reader, and the book theme comes as a wheel.
"""
project = "minbert"
html_title = "minbert: multitask BERT, rebuilt notebook by notebook"
root_doc = "index"
extensions = ["myst_nb", "sphinx-mathjax-offline"]  # the latter's import name has dashes

nb_execution_mode = "off"  # site/build.py ran the hand-out notebooks already
nb_ipywidgets_js = {}  # no widget manager from a CDN (build.py drops widget outputs)
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3  # README's links to #set-up, #how-fast, ...

html_theme = "sphinx_book_theme"
html_theme_options = {
    "show_navbar_depth": 1,
    "use_download_button": False,  # the notebooks to run come from the repository
    "show_toc_level": 2,
}
html_context = {"default_mode": "auto"}  # an empty mode logs a console error at first visit
html_show_search_summary = False  # a summary is fetched, which file:// pages may not do
html_copy_source = False
html_show_sourcelink = False
