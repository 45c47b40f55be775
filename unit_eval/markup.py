"""Escaping for the formats unit-eval writes: LaTeX running text and Markdown table cells."""
from __future__ import annotations

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
_MARKDOWN_SPECIALS = set("\\`*_[]<>|")


def latex_escape(text: str) -> str:
    """Escape every character that LaTeX treats specially in running text."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def markdown_escape(text: str) -> str:
    """Backslash-escape Markdown emphasis, code, link, HTML and table-cell characters."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in str(text))
