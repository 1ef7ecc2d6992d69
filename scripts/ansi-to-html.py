#!/usr/bin/env python3
"""A terminal capture with ANSI SGR colours (tmux capture-pane -e -p) on stdin, as one HTML page
on stdout: each run of text in its colours and weight, on a dark terminal background.

    python3 scripts/ansi-to-html.py [COLUMNS] < pane.ansi > pane.html

Handles what tmux writes: reset, bold, dim, italic, underline, reverse, the 8/16 colours, the
256-colour palette and 24-bit colours; other escape sequences are dropped.
"""

import html
import re
import sys

BASE = [
    "#1e1e1e", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
    "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
]
FOREGROUND, BACKGROUND = "#d4d4d4", "#1e1e1e"


def palette(n):
    """The xterm 256-colour palette."""
    if n < 16:
        return BASE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[n // 6 % 6], steps[n % 6])
    grey = 8 + (n - 232) * 10
    return "#%02x%02x%02x" % (grey, grey, grey)


class Pen:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = self.bg = None
        self.bold = self.dim = self.italic = self.underline = self.reverse = False

    def apply(self, params):
        codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.reset()
            elif c == 1:
                self.bold = True
            elif c == 2:
                self.dim = True
            elif c == 3:
                self.italic = True
            elif c == 4:
                self.underline = True
            elif c == 7:
                self.reverse = True
            elif c == 22:
                self.bold = self.dim = False
            elif c == 23:
                self.italic = False
            elif c == 24:
                self.underline = False
            elif c == 27:
                self.reverse = False
            elif 30 <= c <= 37:
                self.fg = BASE[c - 30]
            elif 90 <= c <= 97:
                self.fg = BASE[c - 90 + 8]
            elif c == 39:
                self.fg = None
            elif 40 <= c <= 47:
                self.bg = BASE[c - 40]
            elif 100 <= c <= 107:
                self.bg = BASE[c - 100 + 8]
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    colour = palette(codes[i + 2])
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    colour = "#%02x%02x%02x" % tuple(codes[i + 2:i + 5])
                    i += 4
                else:
                    colour = None
                if c == 38:
                    self.fg = colour
                else:
                    self.bg = colour
                i += 1
            i += 1

    def style(self):
        fg, bg = self.fg or FOREGROUND, self.bg
        if self.reverse:
            fg, bg = bg or BACKGROUND, fg
        parts = ["color:" + fg]
        if bg:
            parts.append("background:" + bg)
        if self.bold:
            parts.append("font-weight:bold")
        if self.dim:
            parts.append("opacity:0.7")
        if self.italic:
            parts.append("font-style:italic")
        if self.underline:
            parts.append("text-decoration:underline")
        return ";".join(parts)


ESCAPE = re.compile(r"\x1b\[([0-9;]*)([A-Za-z])|\x1b[()][A-Za-z0-9]|\x1b.")


def convert(text):
    pen, out = Pen(), []
    position = 0
    for match in ESCAPE.finditer(text):
        if match.start() > position:
            out.append((pen.style(), text[position:match.start()]))
        if match.group(2) == "m":
            pen.apply(match.group(1))
        position = match.end()
    if position < len(text):
        out.append((pen.style(), text[position:]))
    return "".join(
        '<span style="%s">%s</span>' % (style, cells(chunk)) for style, chunk in out if chunk
    )


def cells(text):
    """Escaped text; each character outside ASCII (box drawing, braille, a dash) in a box one
    column wide, so a fallback font's wider glyphs cannot push the columns out of line."""
    return "".join(
        html.escape(c) if ord(c) < 128 else '<span class="c">%s</span>' % html.escape(c)
        for c in text
    )


def main():
    columns = int(sys.argv[1]) if len(sys.argv) > 1 else 120
    body = convert(sys.stdin.read().rstrip("\n"))
    print(
        """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>invstream bench</title>
<style>
body { margin: 0; background: %s; }
pre { margin: 16px; font: 14px/17px "DejaVu Sans Mono", "Liberation Mono", monospace;
      color: %s; width: %dch; white-space: pre; }
.c { display: inline-block; width: 1ch; text-align: center; overflow: hidden;
     vertical-align: top; }
</style></head>
<body><pre>%s</pre></body></html>"""
        % (BACKGROUND, FOREGROUND, columns, body)
    )


if __name__ == "__main__":
    main()
