"""CSV downloads: the one way lists leave as spreadsheets.

`csv_download` streams: the rows are read through a server-side cursor, a batch at a time, in a
transaction of the download's own (the request's transaction has committed by the time the
body is sent), and written out as they come, so memory stays flat however many rows there are.
Every cell goes through `safe_cell`: text a spreadsheet would run as a formula is quoted;
numbers, negative amounts included, stay numbers. Amounts leave as decimals of the currency's
major unit with the currency beside them (community.money.decimal_amount), never minor units.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from litestar.response import Stream
from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

BATCH = 2000  # rows fetched and written at a time
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"-?\d+(\.\d+)?")


def safe_cell(value: object) -> object:
    """Text a spreadsheet would run as a formula (a name like "=HYPERLINK(...)") is quoted
    with a leading apostrophe; numbers, negative amounts included, stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


def _lines(rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([safe_cell(value) for value in row] for row in rows)
    return out.getvalue()


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A small list (already in memory) as CSV text."""
    return _lines([header]) + _lines(rows)


async def stream_csv(
    sessions: async_sessionmaker[AsyncSession],
    header: Sequence[str],
    statement: Executable,
    to_row: Callable[[Any], Sequence[object]],
) -> AsyncIterator[bytes]:
    """The header, then each batch of the statement's rows as CSV, read in a read-only
    transaction of its own (one statement: one consistent snapshot)."""
    yield _lines([header]).encode()
    async with sessions() as session, session.begin():
        result = await session.stream(statement.execution_options(yield_per=BATCH))
        async for batch in result.partitions():
            yield _lines(to_row(row) for row in batch).encode()


def csv_download(filename: str, chunks: AsyncIterator[bytes] | AsyncIterator[str] | str) -> Stream:
    """The response a browser saves as `filename`."""

    async def once(text: str) -> AsyncIterator[bytes]:
        yield text.encode()

    body = once(chunks) if isinstance(chunks, str) else chunks
    return Stream(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
