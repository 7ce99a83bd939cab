"""A Sphinx extension for the book's HTML (listed in _config.yml under sphinx.extra_extensions).

jupyter-book 1.x registers sphinx-thebe's inline configuration script twice, so every page declares
`const THEBE_JS_URL` twice and the browser logs a SyntaxError on each page. This drops any script that a page
would include a second time (same file, same body, same attributes), keeping the first.
"""
from __future__ import annotations


def _script_key(js) -> tuple:
    attributes = getattr(js, "attributes", {}) or {}
    filename = getattr(js, "filename", js) or ""  # an inline script's filename is "" or None, depending on who added it
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    kept: dict[tuple, object] = {}
    for js in scripts:
        kept.setdefault(_script_key(js), js)
    context["script_files"] = list(kept.values())


def setup(app):
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
