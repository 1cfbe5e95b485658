"""Errors raised by the core when input data breaks a rule."""

from __future__ import annotations


class DataValidationError(ValueError):
    """Bad input data: names the file, the row (when known) and the rule broken.

    Raised before anything is written, so a failed load never leaves a half-written
    partition behind.
    """

    def __init__(
        self,
        rule: str,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        symbol: str | None = None,
        date: str | None = None,
    ) -> None:
        self.rule = rule
        self.file = file
        self.row = row
        self.symbol = symbol
        self.date = date
        where = []
        if file is not None:
            where.append(f"file={file}")
        if row is not None:
            where.append(f"row={row}")
        if symbol is not None:
            where.append(f"symbol={symbol}")
        if date is not None:
            where.append(f"date={date}")
        location = f" [{', '.join(where)}]" if where else ""
        super().__init__(f"rule '{rule}' violated{location}: {message}")
