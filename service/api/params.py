"""Path parameters shared by routes, with the ranges the database can hold (32-bit ids)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_ID = 2**31 - 1

StudyId = Annotated[int, Path(ge=1, le=MAX_ID, description="The study's id.")]
TrialNumber = Annotated[int, Path(ge=0, le=MAX_ID, description="The trial's number in its study.")]
ScheduleId = Annotated[int, Path(ge=1, le=MAX_ID, description="The schedule's id.")]
