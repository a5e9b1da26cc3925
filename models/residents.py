"""The resident register (居民信息库): the people of each household.

What is kept about a person, and why (the README says the same to users): name and relation to the
household head, so a worker knows whom they meet; a phone, to reach them; care tags (独居老人, …),
which belong to a person rather than to a household, so the elderly living alone are visited first;
the ID number only masked (the first six and the last four characters), enough to tell two people
of one name apart and never enough to be misused. Names and phones are shown masked to everyone but
admins, as household heads are; the register counts its active people for the work report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.admin import mask_name
from models.tables import Resident
from models.text import mask_id_numbers, one_line

RESIDENT_TAGS = ("独居老人", "空巢老人", "高龄老人", "残疾人", "低保", "特困", "退役军人", "留守儿童", "重点关爱")
MASKED_ID = re.compile(r"^\d{6}\*{8}\d{3}[0-9X]$")
ID_15 = re.compile(r"^\d{15}$")


def masked_id_number(text: str) -> str | None:
    """The stored form of an ID number (18 digits, the last may be X; or 15 digits; or already
    masked as an export writes it), or None when the text is not one."""
    raw = one_line(text).upper().replace(" ", "")
    if ID_15.match(raw):
        return raw[:6] + "*" * 5 + raw[-4:]
    masked = mask_id_numbers(raw)
    return masked if MASKED_ID.match(masked) or re.match(r"^\d{6}\*{5}\d{4}$", masked) else None


@dataclass(frozen=True)
class ResidentRow:
    name: str
    relation: str | None
    tags: tuple[str, ...]


async def household_residents(session: AsyncSession, household_id: int, mask: bool = True) -> list[ResidentRow]:
    """The active people of a household, the head first; names masked (张*) unless `mask` is False
    (admins), as household heads are."""
    rows = (await session.exec(
        select(Resident).where(Resident.household_id == household_id, col(Resident.active).is_(True)).order_by(Resident.id)
    )).all()
    people = [ResidentRow((mask_name(r.name) if mask else r.name) or "", r.relation, tuple(r.tags)) for r in rows]
    return sorted(people, key=lambda p: p.relation != "户主")

