"""Owners and admins see their community's background jobs, failed ones above all, and retry them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, post
from litestar.di import Provide
from litestar.params import QueryParameter

from community import jobs
from community.accounts.guards import StaffMember, provide_editor, provide_principal
from community.errors import NotFound
from community.web import Cursor, Db, ObjectId, Page, PageLimit, page_of


class JobOut(msgspec.Struct):
    id: int
    name: str
    state: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    # No payload: it can hold what only its recipient may see (an emailed login link).


def job_out(row: jobs.OutboxJob) -> JobOut:
    return JobOut(
        id=row.id,
        name=row.name,
        state=row.state.value,
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


StateFilter = Annotated[
    Literal["pending", "queued", "done", "failed"] | None, QueryParameter(name="state", description="Only jobs in this state.")
]


class JobsController(Controller):
    path = "/communities/{community_id:int}/jobs"
    tags = ["jobs"]
    dependencies = {"principal": Provide(provide_principal), "editor": Provide(provide_editor)}

    @get("/", summary="Background jobs of this community, newest first")
    async def list_jobs(
        self, editor: StaffMember, db: Db, job_state: StateFilter = None, before: Cursor = None, limit: PageLimit = 50
    ) -> Page[JobOut]:
        rows = await jobs.list_jobs(
            db, community_id=editor.community_id, state=jobs.JobState(job_state) if job_state else None, after=before, limit=limit
        )
        return page_of([job_out(r) for r in rows], limit, lambda item: item.id)

    @post("/{job_id:int}/retry", status_code=200, summary="Run a failed job again")
    async def retry(self, job_id: ObjectId, editor: StaffMember, db: Db) -> JobOut:
        row = await jobs.retry_failed(db, job_id=job_id, community_id=editor.community_id)
        if row is None:
            raise NotFound("no failed job with this id in this community")
        return job_out(row)
