"""Go's `text/tabwriter` (pure), which kubectl's table printer and `describe` both write through.

Text is cut into cells at tabs; a line's last cell (the text before the newline) is not part of a
column. A column block is a run of consecutive lines that all have a cell in that column; its
width is the widest cell plus `padding` (at least `minwidth`), and every cell of the block is
padded to it. A line with a single cell flushes the writer, so the lines after it start new
blocks. Only what kubectl uses is kept: left alignment, a space pad character, no flags.

kubectl's settings: `get` uses (minwidth 6, tabwidth 4, padding 3); `describe` (0, 8, 2).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Cell:
    text: str
    htab: bool


class TabWriter:
    def __init__(self, minwidth: int = 0, tabwidth: int = 8, padding: int = 1, padchar: str = " "):
        if minwidth < 0 or tabwidth < 0 or padding < 0:
            raise ValueError("negative minwidth, tabwidth, or padding")
        if len(padchar) != 1 or padchar == "\t":
            raise ValueError("padchar must be one non-tab character")
        self.minwidth, self.tabwidth, self.padding, self.padchar = minwidth, tabwidth, padding, padchar
        self._out: list[str] = []
        self._reset()

    def _reset(self) -> None:
        self._lines: list[list[_Cell]] = [[]]
        self._cell = ""
        self._widths: list[int] = []

    def _terminate_cell(self, htab: bool) -> int:
        self._lines[-1].append(_Cell(self._cell, htab))
        self._cell = ""
        return len(self._lines[-1])

    def write(self, text: str) -> None:
        start = 0
        for i, ch in enumerate(text):
            if ch in "\t\v\n\f":
                self._cell += text[start:i]
                start = i + 1
                ncells = self._terminate_cell(ch == "\t")
                if ch in "\n\f":
                    self._lines.append([])
                    if ch == "\f" or ncells == 1:
                        self.flush()
        self._cell += text[start:]

    def flush(self) -> None:
        if self._cell:
            self._terminate_cell(False)
        self._format(0, len(self._lines))
        self._reset()

    def getvalue(self) -> str:
        """Everything written so far, flushed."""
        self.flush()
        return "".join(self._out)

    def _write_lines(self, line0: int, line1: int) -> None:
        for i in range(line0, line1):
            for j, c in enumerate(self._lines[i]):
                self._out.append(c.text)
                if j < len(self._widths):
                    self._out.append(self.padchar * (self._widths[j] - len(c.text)))
            if i + 1 == len(self._lines):
                self._out.append(self._cell)
            else:
                self._out.append("\n")

    def _format(self, line0: int, line1: int) -> None:
        column = len(self._widths)
        this = line0
        while this < line1:
            if column < len(self._lines[this]) - 1:
                self._write_lines(line0, this)
                line0 = this
                width = self.minwidth
                while this < line1 and column < len(self._lines[this]) - 1:
                    width = max(width, len(self._lines[this][column].text) + self.padding)
                    this += 1
                self._widths.append(width)
                self._format(line0, this)
                self._widths.pop()
                line0 = this
            this += 1
        self._write_lines(line0, line1)


def tabbed(text: str, minwidth: int = 0, tabwidth: int = 8, padding: int = 1) -> str:
    w = TabWriter(minwidth, tabwidth, padding)
    w.write(text)
    return w.getvalue()
