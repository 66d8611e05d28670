"""Go's ``text/tabwriter``, for output that must be byte-identical to Go Stolon's.

Go Stolon's ``stolonctl status`` writes its tables through a ``tabwriter.Writer`` and
flushes it after every row, so *when* text is flushed changes the output: the header and
the first row are aligned together, every later row alone. A helper that aligns a whole
table at once cannot reproduce that; this is the writer itself, with Go's semantics:

- text is cut into cells, each terminated by a tab (or ``\\v``); a line ends at ``\\n``
  (or ``\\f``, which also flushes). The last cell of a line is not tab-terminated: it is
  not part of any column and is never padded;
- a *column block* is a run of consecutive lines that all have a cell in that column;
  the block's width is its widest cell plus ``padding`` (at least ``minwidth``), and
  blocks are found recursively, column by column, as Go's ``format`` does;
- with ``padchar`` ``'\\t'``, a cell is padded with tabs up to the block width rounded up
  to a multiple of ``tabwidth`` (Go forces left alignment then); otherwise with
  ``padchar`` up to the block width;
- a line holding a single cell cannot affect the lines after it, so it flushes what is
  buffered (Go does the same), and :meth:`flush` formats the rest.

Widths count code points (Go counts UTF-8 runes: the same). Not ported, as stolonctl
does not use them: the ``AlignRight``, ``DiscardEmptyColumns``, ``TabIndent``,
``FilterHTML``, ``StripEscape`` and ``Debug`` flags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Cell:
    text: str = ""
    #: terminated by a tab (a "hard" tab) rather than by \v or the end of the line
    htab: bool = False


@dataclass
class _Line:
    cells: list[_Cell] = field(default_factory=list)


class TabWriter:
    """``tabwriter.NewWriter(output, minwidth, tabwidth, padding, padchar, 0)``."""

    def __init__(
        self, output: Callable[[str], object], minwidth: int, tabwidth: int, padding: int, padchar: str
    ) -> None:
        if len(padchar) != 1:
            raise ValueError("padchar must be one character")
        self._output = output
        self.minwidth = minwidth
        self.tabwidth = tabwidth
        self.padding = padding
        self.padchar = padchar
        self._reset()

    def _reset(self) -> None:
        self._lines: list[_Line] = [_Line()]
        self._cell = _Cell()
        self._widths: list[int] = []

    # -- input --------------------------------------------------------------------------------
    def write(self, text: str) -> None:
        start = 0
        for i, ch in enumerate(text):
            if ch not in "\t\v\n\f":
                continue
            self._cell.text += text[start:i]
            start = i + 1
            ncells = self._terminate_cell(htab=ch == "\t")
            if ch in "\n\f":
                self._lines.append(_Line())
                if ch == "\f" or ncells == 1:
                    self.flush()
        self._cell.text += text[start:]

    def _terminate_cell(self, htab: bool) -> int:
        self._cell.htab = htab
        line = self._lines[-1]
        line.cells.append(self._cell)
        self._cell = _Cell()
        return len(line.cells)

    def flush(self) -> None:
        """Format and write everything buffered (Go's ``Flush``): a cell in progress ends
        the last line without a newline."""
        if self._cell.text:
            self._terminate_cell(htab=False)
        out: list[str] = []
        self._format(out, 0, len(self._lines))
        self._reset()
        if out:
            self._output("".join(out))

    # -- Go's format / writeLines -------------------------------------------------------------
    def _format(self, out: list[str], line0: int, line1: int) -> None:
        column = len(self._widths)
        this = line0
        while this < line1:
            cells = self._lines[this].cells
            if column >= len(cells) - 1:
                this += 1
                continue
            # a cell in this column: the lines before it are done, a column block begins
            self._write_lines(out, line0, this)
            line0 = this
            width = self.minwidth
            while this < line1:
                cells = self._lines[this].cells
                if column >= len(cells) - 1:
                    break
                width = max(width, len(cells[column].text) + self.padding)
                this += 1
            self._widths.append(width)
            self._format(out, line0, this)
            self._widths.pop()
            line0 = this
        self._write_lines(out, line0, line1)

    def _write_lines(self, out: list[str], line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = self._lines[i].cells
            for j, cell in enumerate(cells):
                out.append(cell.text)
                if j < len(self._widths):
                    out.append(self._padding(len(cell.text), self._widths[j]))
            if i + 1 < len(self._lines):
                out.append("\n")

    def _padding(self, textw: int, cellw: int) -> str:
        if self.padchar == "\t":
            if self.tabwidth == 0:
                return ""
            cellw = (cellw + self.tabwidth - 1) // self.tabwidth * self.tabwidth
            return "\t" * ((cellw - textw + self.tabwidth - 1) // self.tabwidth)
        return self.padchar * (cellw - textw)


def table(rows: list[list[str]]) -> list[str]:
    """Rows aligned together (written whole, flushed once) with stolonctl's settings
    (minwidth 0, tabwidth 8, padding 1, tab padding); the lines, without newlines."""
    chunks: list[str] = []
    tw = TabWriter(chunks.append, 0, 8, 1, "\t")
    for row in rows:
        tw.write("\t".join(row) + "\n")
    tw.flush()
    return "".join(chunks).splitlines()
