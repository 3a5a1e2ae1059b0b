"""CSV downloads: streamed from the database in batches, cells a spreadsheet would run as a
formula quoted, numbers left numbers."""

from __future__ import annotations

import csv
import io

from sqlalchemy import column, select, text, values
from sqlalchemy.types import Integer, String

from community import exports


async def test_a_statement_streams_as_csv_in_batches(sessions) -> None:
    rows = values(column("n", Integer), column("name", String), name="t").data(
        [(i, f"=cmd|{i}" if i % 1000 == 0 else f"person {i}") for i in range(1, 4502)]
    )
    chunks = [
        chunk
        async for chunk in exports.stream_csv(sessions, ["n", "name"], select(rows.c.n, rows.c.name).order_by(rows.c.n), tuple)
    ]
    assert len(chunks) == 1 + 3  # the header, then 2000 + 2000 + 501 rows
    parsed = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert parsed[0] == ["n", "name"] and len(parsed) == 4502
    assert parsed[1] == ["1", "person 1"] and parsed[1000] == ["1000", "'=cmd|1000"]
    async with sessions() as session:  # the download's own transaction is over
        assert await session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'")) == 0


def test_cells_a_spreadsheet_would_run_are_quoted_and_numbers_stay_numbers() -> None:
    text_ = exports.to_csv(["a", "b", "c"], [["=SUM(A1)", "-12.50", "@user"], ["+1", "-3", "plain"]])
    assert text_ == "a,b,c\n'=SUM(A1),-12.50,'@user\n+1,-3,plain\n".replace("+1,", "'+1,")
