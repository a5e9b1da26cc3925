"""Users, grids, invitations: who may do what, where."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import clock
from models.errors import RuleError
from models.tables import Grid, Invitation, Role, User, UserGrid

GRID_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
ROLE_ALIASES = {
    "worker": Role.WORKER, "网格员": Role.WORKER,
    "supervisor": Role.SUPERVISOR, "网格长": Role.SUPERVISOR,
    "admin": Role.ADMIN, "管理员": Role.ADMIN,
}


@dataclass(frozen=True)
class Member:
    """A registered user as handlers see them: a plain value, not a live ORM row."""

    id: int
    telegram_id: int
    display_name: str | None
    phone: str | None
    role: Role
    language: str | None
    active: bool
    grid_ids: tuple[int, ...]

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


async def get_member(session: AsyncSession, telegram_id: int) -> Member | None:
    user = (await session.exec(select(User).where(User.telegram_id == telegram_id))).first()
    if user is None:
        return None
    grid_ids = (await session.exec(select(UserGrid.grid_id).where(UserGrid.user_id == user.id).order_by(UserGrid.grid_id))).all()
    return Member(
        id=user.id, telegram_id=user.telegram_id, display_name=user.display_name, phone=user.phone,
        role=Role(user.role), language=user.language, active=user.active, grid_ids=tuple(grid_ids),
    )


async def scope_grid_ids(session: AsyncSession, member: Member) -> list[int]:
    """Grids whose records the member may see: all for admins, their own for everyone else."""
    if member.is_admin:
        return list((await session.exec(select(Grid.id).order_by(Grid.id))).all())
    return list(member.grid_ids)


async def create_user(
    session: AsyncSession, telegram_id: int, role: Role, grid_ids: list[int], display_name: str | None, language: str | None
) -> Member:
    user = User(telegram_id=telegram_id, role=role.value, display_name=display_name, language=language)
    session.add(user)
    await session.flush()
    for gid in sorted(set(grid_ids)):
        session.add(UserGrid(user_id=user.id, grid_id=gid))
    await session.flush()
    member = await get_member(session, telegram_id)
    assert member is not None
    return member


async def register_configured_admin(
    session: AsyncSession, telegram_id: int, display_name: str | None, language: str | None
) -> Member:
    """A user listed in ADMIN_TELEGRAM_IDS becomes an admin at their first /start."""
    existing = await get_member(session, telegram_id)
    if existing is not None:
        return existing
    return await create_user(session, telegram_id, Role.ADMIN, [], display_name, language)


async def set_profile(session: AsyncSession, user_id: int, display_name: str | None = None, phone: str | None = None) -> None:
    values: dict[str, object] = {}
    if display_name is not None:
        values["display_name"] = display_name
    if phone is not None:
        values["phone"] = phone
    if values:
        await session.exec(update(User).where(col(User.id) == user_id).values(**values))  # type: ignore[call-overload]


async def set_language(session: AsyncSession, user_id: int, language: str) -> None:
    await session.exec(update(User).where(col(User.id) == user_id).values(language=language))  # type: ignore[call-overload]


# -- grids --------------------------------------------------------------------------------------


async def create_grid(session: AsyncSession, code: str, name: str, target_coverage: float, community: str | None = None) -> Grid:
    code, name = code.strip(), " ".join(name.split())
    if not GRID_CODE_RE.match(code):
        raise RuleError("grid_code_invalid", code=code)
    if not 1 <= len(name) <= 100:
        raise RuleError("grid_name_invalid")
    if (await session.exec(select(Grid).where(func.upper(Grid.code) == code.upper()))).first():
        raise RuleError("grid_exists", code=code)  # codes are told apart without letter case (g01 is G01)
    grid = Grid(code=code, name=name, community=community, target_coverage=target_coverage)
    session.add(grid)
    await session.flush()
    return grid


async def grids_by_codes(session: AsyncSession, codes: list[str]) -> list[Grid]:
    """The grids named by `codes` in any letter case (g01 is G01), in that order; RuleError naming
    the first unknown code."""
    rows = {g.code.upper(): g for g in (await session.exec(select(Grid).where(func.upper(Grid.code).in_([c.upper() for c in codes])))).all()}
    for code in codes:
        if code.upper() not in rows:
            raise RuleError("grid_unknown", code=code)
    return [rows[c.upper()] for c in codes]


async def grids_by_ids(session: AsyncSession, ids: list[int] | tuple[int, ...]) -> list[Grid]:
    if not ids:
        return []
    return list((await session.exec(select(Grid).where(col(Grid.id).in_(list(ids))).order_by(Grid.code))).all())


# -- invitations --------------------------------------------------------------------------------


def parse_role(text: str) -> Role:
    role = ROLE_ALIASES.get(text.strip().lower())
    if role is None:
        raise RuleError("role_unknown", role=text)
    return role


async def create_invitation(
    session: AsyncSession, role: Role, grid_codes: list[str], issued_by: int, valid_days: int
) -> tuple[Invitation, list[Grid]]:
    grids = await grids_by_codes(session, grid_codes) if grid_codes else []
    if role != Role.ADMIN and not grids:
        raise RuleError("invite_needs_grid")
    invitation = Invitation(
        code=secrets.token_urlsafe(12),
        role=role.value,
        grid_ids=[g.id for g in grids],
        issued_by=issued_by,
        expires_at=clock.now() + timedelta(days=valid_days),
    )
    session.add(invitation)
    await session.flush()
    return invitation, grids


async def redeem_invitation(
    session: AsyncSession, code: str, telegram_id: int, display_name: str | None, language: str | None
) -> Member:
    """Register the user with the invitation's role and grids; the code then stops working.

    The claim is a compare-and-set on `used_by IS NULL`, so two people racing for one code
    cannot both join with it.
    """
    if await get_member(session, telegram_id) is not None:
        raise RuleError("already_registered")
    invitation = (await session.exec(select(Invitation).where(Invitation.code == code))).first()
    if invitation is None:
        raise RuleError("invite_unknown")
    if invitation.used_by is not None:
        raise RuleError("invite_used")
    now = clock.now()
    if invitation.expires_at <= now:
        raise RuleError("invite_expired")
    member = await create_user(session, telegram_id, Role(invitation.role), invitation.grid_ids, display_name, language)
    claimed = await session.exec(  # type: ignore[call-overload]
        update(Invitation)
        .where(col(Invitation.id) == invitation.id, col(Invitation.used_by).is_(None))
        .values(used_by=member.id, used_at=now)
    )
    if claimed.rowcount != 1:
        raise RuleError("invite_used")  # the caller's transaction rolls back the new user
    return member


async def active_admin_telegram_ids(session: AsyncSession) -> list[int]:
    rows = await session.exec(select(User.telegram_id).where(User.role == Role.ADMIN.value, col(User.active).is_(True)))
    return list(rows.all())


# -- privacy --------------------------------------------------------------------------------------


def forgotten_name(user_id: int) -> str:
    """The name a forgotten user's records show from then on."""
    return f"已注销用户#{user_id}"


async def forget_user(session: AsyncSession, user_id: int) -> bool:
    """Anonymise a departing user: name -> 已注销用户#<id>, phone -> NULL, account deactivated.

    Their visits, patrols, issues and audit entries stay (audit entries they made show the new
    name). A compare-and-set: False when the user is unknown or already forgotten, so a repeated
    request (a double tap) acts once.
    """
    from models.audit import AuditLog

    name = forgotten_name(user_id)
    changed = await session.exec(  # type: ignore[call-overload]
        update(User)
        .where(col(User.id) == user_id,
               or_(col(User.display_name).is_(None), col(User.display_name) != name, col(User.phone).is_not(None), col(User.active).is_(True)))
        .values(display_name=name, phone=None, active=False)
    )
    if changed.rowcount != 1:
        return False
    await session.exec(update(AuditLog).where(col(AuditLog.actor_id) == user_id).values(actor=name))  # type: ignore[call-overload]
    return True
