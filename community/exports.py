"""CSV downloads: the one way lists leave as spreadsheets.

`csv_download` streams: the rows are read through a server-side cursor, a batch at a time, in a
transaction of the download's own (the request's transaction has committed by the time the
body is sent), and written out as they come, so memory stays flat however many rows there are.
Every cell goes through `safe_cell`: text a spreadsheet would run as a formula is quoted;
numbers, negative amounts included, stay numbers. Amounts leave as decimals of the currency's
major unit with the currency beside them (community.money.decimal_amount), never minor units.

`stream_copy` is the same for very long lists (the members directory): PostgreSQL writes the CSV
itself (COPY), the cells made safe in SQL by `sql_safe_cell`, the same rule as `safe_cell`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from litestar.response import Stream
from sqlalchemy import Executable, and_, case, literal, text
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


def sql_safe_cell(expression: Any) -> Any:
    """`safe_cell` in SQL, for text PostgreSQL writes itself (stream_copy): the same rule."""
    starts = "^[=+@\t\r-]"  # FORMULA_STARTS
    return case(
        (and_(expression.regexp_match(starts), ~expression.regexp_match(r"^-?\d+(\.\d+)?$")), literal("'") + expression),
        else_=expression,
    )


async def stream_copy(
    sessions: async_sessionmaker[AsyncSession], header: Sequence[str], statement: Executable
) -> AsyncIterator[bytes]:
    """The header, then the statement's rows as CSV written by PostgreSQL itself (COPY (query)
    TO STDOUT): for lists of hundreds of thousands of rows, where formatting each row in Python
    is the bottleneck. The statement's text columns must already be safe (`sql_safe_cell`) and
    formatted (amounts as decimals). Chunks pass through a small bounded queue, so a slow client
    holds the copy back instead of growing memory: flat however many rows."""
    yield _lines([header]).encode()
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)
    async with sessions() as session, session.begin():
        connection = await session.connection()
        # Compiling a long statement to machine code costs more than it saves here.
        # and a sort of a few hundred thousand rows fits in memory rather than on disk.
        await connection.execute(text("SET LOCAL jit = off"))
        await connection.execute(text("SET LOCAL work_mem = '64MB'"))
        # Timestamps as text are ISO (2026-01-31 09:05:00) whatever the server's default.
        await connection.execute(text("SET LOCAL datestyle = 'ISO, YMD'"))
        compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[name] for name in compiled.positiontup or []]
        driver = (await connection.get_raw_connection()).driver_connection

        async def sink(chunk: bytes) -> None:
            await chunks.put(bytes(chunk))

        async def copy() -> None:
            try:
                await driver.copy_from_query(str(compiled), *params, output=sink, format="csv")
            finally:
                await chunks.put(None)

        task = asyncio.create_task(copy())
        try:
            while (chunk := await chunks.get()) is not None:
                yield chunk
            await task  # its error, if it failed
        finally:
            if not task.done():
                task.cancel()
