"""Text that never leaves a figure: titles built from whole phrases (a phrase is never split across lines;
a line holds as many phrases as fit the width), wrapped to the panel or figure width in points of the
figures' font (`tests/test_figures.py` checks every text artist's extent with the Agg renderer)."""
from __future__ import annotations

from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath

SEP = "\x1f"  # between the phrases of a panel title; the line breaks go there only (see fit_title)
_FONT = "DejaVu Sans"


def text_width(s: str, size: float) -> float:
    """Width of one line of text in points, in the figures' font (DejaVu Sans)."""
    return TextToPath().get_text_width_height_descent(s, FontProperties(family=_FONT, size=size), ismath=False)[0]


def fit_phrases(phrases, width_pt: float, size: float) -> list:
    """Greedy lines of whole phrases (each carrying its own trailing separator) no wider than width_pt;
    a phrase wider than a line on its own is broken between words."""
    lines, cur = [], ""
    for ph in phrases:
        if cur and text_width((cur + ph).rstrip(" ·,"), size) > width_pt:
            lines.append(cur.rstrip(" ·–"))
            cur = ""
        cur += ph
        while text_width(cur.rstrip(" ·,"), size) > width_pt and " " in cur.strip():
            words, head = cur.split(" "), ""
            for i in range(1, len(words)):
                if text_width(" ".join(words[:i]), size) > width_pt:
                    break
                head = " ".join(words[:i])
            if not head:
                head = words[0]
            lines.append(head.rstrip(" ·–"))
            cur = cur[len(head):].lstrip(" ")
            if text_width(cur.rstrip(" ·,"), size) <= width_pt:
                break
    if cur.strip():
        lines.append(cur.rstrip(" ·–"))
    return lines


def fit_title(text: str, width_pt: float, size: float) -> str:
    """A panel title (groups separated by newlines, phrases by SEP) flowed into lines of `width_pt`."""
    lines = []
    for group in text.split("\n"):
        lines += fit_phrases(group.split(SEP), width_pt, size)
    return "\n".join(lines)


def phrases(text: str, sep: str) -> list:
    """`text` cut after every `sep` (each piece keeps its separator)."""
    parts = text.split(sep)
    return [p + sep for p in parts[:-1]] + [parts[-1]]
