"""Syntax highlighting with pygments: program sources, diffs, and the stylesheet written beside the report.

A run's programs are mostly their parent plus a small edit, and pygments' Python lexer costs ~0.1 ms a
line, too slow for thousands of pages. So a source is cut at the start of every statement (where the lexer
is always back in its root state: no string, no bracket, no pending name), each piece is lexed once and
cached, and the pieces' tokens are formatted together: the same HTML as lexing the whole text, with only
the edited statements lexed again.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from itertools import chain

from markupsafe import Markup

CSS_CLASS = "hl"
STYLE = "default"


@lru_cache(maxsize=1)
def _tools():
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import DiffLexer, PythonLexer
    return (PythonLexer(), DiffLexer(), HtmlFormatter(cssclass=CSS_CLASS, linenos="table", style=STYLE),
            HtmlFormatter(cssclass=CSS_CLASS, style=STYLE))


def normalize(source: str) -> str:
    """What pygments' Lexer.get_tokens does to a text before lexing (newlines, stripnl, ensurenl)."""
    text = source.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    return text if text.endswith("\n") else text + "\n"


def statement_starts(text: str) -> list[int] | None:
    """1-based numbers of the lines where a statement (or its decorators) begins; None if not Python."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    starts = {1}
    _add_starts(tree.body, starts)
    return sorted(starts)


def _add_starts(stmts: list, starts: set[int]) -> None:
    """Walk statements only (expressions hold no statement), in bodies, else/finally and handler/case blocks."""
    for node in stmts:
        starts.add(min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())]))
        for name in ("body", "orelse", "finalbody"):
            sub = getattr(node, name, None)
            if isinstance(sub, list):
                _add_starts(sub, starts)
        for block in (*getattr(node, "handlers", ()), *getattr(node, "cases", ())):
            _add_starts(block.body, starts)


def pieces(text: str) -> list[str]:
    starts = statement_starts(text)
    if starts is None:
        return [text]
    lines = text.splitlines(keepends=True)
    bounds = starts + [len(lines) + 1]
    return ["".join(lines[a - 1:b - 1]) for a, b in zip(bounds, bounds[1:]) if b > a]


@lru_cache(maxsize=65536)
def _lex(piece: str) -> tuple:
    py = _tools()[0]
    return tuple((ttype, value) for _, ttype, value in py.get_tokens_unprocessed(piece))


@lru_cache(maxsize=512)  # the best program and the parents of many children come up again and again
def python_html(source: str) -> Markup:
    from pygments import format as pyg_format
    numbered = _tools()[2]
    tokens = chain.from_iterable(_lex(p) for p in pieces(normalize(source)))
    return Markup(pyg_format(tokens, numbered))


def python_html_plain(source: str) -> Markup:
    """The same through pygments' highlight() on the whole text (the reference the cached path matches)."""
    from pygments import highlight
    py, _, numbered, _ = _tools()
    return Markup(highlight(source, py, numbered))


def diff_html(diff: str) -> Markup:
    from pygments import highlight
    _, lexer, _, plain = _tools()
    return Markup(highlight(diff, lexer, plain))


def stylesheet() -> str:
    _, _, numbered, _ = _tools()
    return numbered.get_style_defs(f".{CSS_CLASS}")
