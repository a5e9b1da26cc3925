"""Users, grids, invitations: who may do what, where."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, delete, func, literal, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import clock, outbox
from models.errors import RuleError
from models.tables import ChannelIdentity, Grid, Invitation, LinkCode, Role, User, UserGrid

GRID_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
ROLE_ALIASES = {
    "worker": Role.WORKER, "网格员": Role.WORKER,
    "supervisor": Role.SUPERVISOR, "网格长": Role.SUPERVISOR,
    "admin": Role.ADMIN, "管理员": Role.ADMIN,
}


TELEGRAM = "telegram"


def key_on(identities: tuple[tuple[str, str], ...], channel: str) -> str | None:
    """The key among (channel, key) `identities` on `channel`, None if there is none."""
    return next((key for ch, key in identities if ch == channel), None)


@dataclass(frozen=True)
class Member:
    """A registered user as handlers see them: a plain value, not a live ORM row."""

    id: int
    display_name: str | None
    phone: str | None
    role: Role
    language: str | None
    active: bool
    grid_ids: tuple[int, ...]
    identities: tuple[tuple[str, str], ...] = ()  # (channel, key), the first made first

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def key_on(self, channel: str) -> str | None:
        """Who they are on `channel` (a Telegram user id as text), None if they do not use it."""
        return key_on(self.identities, channel)

    @property
    def recipient(self) -> str | None:
        """Where the outbox reaches them: their first identity (see `reach`)."""
        return outbox.recipient(*self.identities[0]) if self.identities else None

    @property
    def handle(self) -> str:
        """How an admin names them when they have no name: their first identity's key, else #id."""
        return self.identities[0][1] if self.identities else f"#{self.id}"


def reach(user_id):  # noqa: ANN001, ANN201 - a column; a scalar subquery
    """SQL: the outbox recipient of the person whose id is `user_id` (their first identity), NULL if
    they have none (forgotten). The one place a query learns where to send."""
    prefix = case(*((ChannelIdentity.channel == ch, literal(p)) for ch, p in outbox.PREFIX.items()), else_=ChannelIdentity.channel)
    return (select(prefix + literal(":") + ChannelIdentity.key).where(ChannelIdentity.user_id == user_id)
            .order_by(ChannelIdentity.id).limit(1).correlate_except(ChannelIdentity).scalar_subquery())


async def identities_of(session: AsyncSession, user_ids: list[int]) -> dict[int, tuple[tuple[str, str], ...]]:
    """Each person's (channel, key) pairs, the first made first."""
    out: dict[int, list[tuple[str, str]]] = {}
    if user_ids:
        rows = await session.exec(select(ChannelIdentity.user_id, ChannelIdentity.channel, ChannelIdentity.key)
                                  .where(col(ChannelIdentity.user_id).in_(list(user_ids))).order_by(ChannelIdentity.id))
        for uid, channel, key in rows.all():
            out.setdefault(uid, []).append((channel, key))
    return {uid: tuple(pairs) for uid, pairs in out.items()}


_THEIRS = aliased(ChannelIdentity)
_THEIR_GRIDS = aliased(UserGrid)
# The gate's hot path (every message): the person, their identities and their grids in one query
# of plain columns (rows = identities x grids, a handful).
_MEMBER = (select(User.id, User.display_name, User.phone, User.role, User.language, User.active,
                  _THEIRS.channel, _THEIRS.key, _THEIR_GRIDS.grid_id)
           .outerjoin(_THEIRS, col(_THEIRS.user_id) == User.id)
           .outerjoin(_THEIR_GRIDS, col(_THEIR_GRIDS.user_id) == User.id)
           .order_by(_THEIRS.id, _THEIR_GRIDS.grid_id))


async def _member_where(session: AsyncSession, *where) -> Member | None:  # noqa: ANN002
    """The one user matching `where`, with their identities and grids."""
    rows = (await session.exec(_MEMBER.where(*where))).all()  # type: ignore[call-overload]
    if not rows:
        return None
    uid, name, phone, role, language, active = rows[0][:6]
    identities = dict.fromkeys((c, k) for *_, c, k, _g in rows if c is not None)
    grid_ids = sorted({g for *_, g in rows if g is not None})
    return Member(
        id=uid, display_name=name, phone=phone, role=Role(role), language=language,
        active=active, grid_ids=tuple(grid_ids), identities=tuple(identities),
    )


async def get_member(session: AsyncSession, key: int | str, channel: str = TELEGRAM) -> Member | None:
    """The person who is `key` on `channel` (default Telegram, whose keys are user ids)."""
    known_as = select(ChannelIdentity.user_id).where(ChannelIdentity.channel == channel, ChannelIdentity.key == str(key))
    return await _member_where(session, col(User.id) == known_as.scalar_subquery())


async def member_by_id(session: AsyncSession, user_id: int) -> Member | None:
    return await _member_where(session, col(User.id) == user_id)


async def scope_grid_ids(session: AsyncSession, member: Member) -> list[int]:
    """Grids whose records the member may see: all for admins, their own for everyone else."""
    if member.is_admin:
        return list((await session.exec(select(Grid.id).order_by(Grid.id))).all())
    return list(member.grid_ids)


async def create_user(
    session: AsyncSession, key: int | str, role: Role, grid_ids: list[int], display_name: str | None, language: str | None,
    channel: str = TELEGRAM,
) -> Member:
    """A new person, known on `channel` as `key`."""
    user = User(role=role.value, display_name=display_name, language=language)
    session.add(user)
    await session.flush()
    session.add(ChannelIdentity(user_id=user.id, channel=channel, key=str(key)))
    for gid in sorted(set(grid_ids)):
        session.add(UserGrid(user_id=user.id, grid_id=gid))
    await session.flush()
    member = await member_by_id(session, user.id)
    assert member is not None
    return member


async def register_configured_admin(
    session: AsyncSession, key: int | str, display_name: str | None, language: str | None, channel: str = TELEGRAM
) -> Member:
    """A person named an admin in the settings becomes one at their first /start."""
    existing = await get_member(session, key, channel)
    if existing is not None:
        return existing
    return await create_user(session, key, Role.ADMIN, [], display_name, language, channel)


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
    session: AsyncSession, code: str, key: int | str, display_name: str | None, language: str | None, channel: str = TELEGRAM
) -> Member:
    """Register the user with the invitation's role and grids; the code then stops working.

    The claim is a compare-and-set on `used_by IS NULL`, so two people racing for one code
    cannot both join with it.
    """
    if await get_member(session, key, channel) is not None:
        raise RuleError("already_registered")
    invitation = (await session.exec(select(Invitation).where(Invitation.code == code))).first()
    if invitation is None:
        raise RuleError("invite_unknown")
    if invitation.used_by is not None:
        raise RuleError("invite_used")
    now = clock.now()
    if invitation.expires_at <= now:
        raise RuleError("invite_expired")
    member = await create_user(session, key, Role(invitation.role), invitation.grid_ids, display_name, language, channel)
    claimed = await session.exec(  # type: ignore[call-overload]
        update(Invitation)
        .where(col(Invitation.id) == invitation.id, col(Invitation.used_by).is_(None))
        .values(used_by=member.id, used_at=now)
    )
    if claimed.rowcount != 1:
        raise RuleError("invite_used")  # the caller's transaction rolls back the new user
    return member


# -- linking a second channel ----------------------------------------------------------------------

LINK_VALID = timedelta(minutes=10)
_LINK_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off one phone, typed into another


async def create_link_code(session: AsyncSession, user_id: int) -> LinkCode:
    """A code that binds, within LINK_VALID, the channel it is sent on to this person."""
    code = "".join(secrets.choice(_LINK_ALPHABET) for _ in range(8))
    link = LinkCode(code=code, user_id=user_id, expires_at=clock.now() + LINK_VALID)
    session.add(link)
    await session.flush()
    return link


async def redeem_link_code(session: AsyncSession, code: str, key: str, channel: str) -> Member:
    """Bind (`channel`, `key`) to the person who made `code`; the code then stops working.

    RuleError link_unknown / link_used / link_expired; already_registered when this identity is
    someone's already; link_same_channel when the person has an identity on this channel."""
    if await get_member(session, key, channel) is not None:
        raise RuleError("already_registered")
    link = (await session.exec(select(LinkCode).where(LinkCode.code == code.strip().upper()))).first()
    if link is None:
        raise RuleError("link_unknown")
    if link.used_at is not None:
        raise RuleError("link_used")
    now = clock.now()
    if link.expires_at <= now:
        raise RuleError("link_expired")
    member = await member_by_id(session, link.user_id)
    if member is None or not member.active:
        raise RuleError("link_unknown")
    if member.key_on(channel) is not None:
        raise RuleError("link_same_channel")
    claimed = await session.exec(  # type: ignore[call-overload]
        update(LinkCode).where(col(LinkCode.id) == link.id, col(LinkCode.used_at).is_(None)).values(used_at=now))
    if claimed.rowcount != 1:
        raise RuleError("link_used")
    session.add(ChannelIdentity(user_id=member.id, channel=channel, key=key))
    await session.flush()
    linked = await member_by_id(session, member.id)
    assert linked is not None
    return linked


async def active_admin_recipients(session: AsyncSession) -> list[str]:
    """Where the active admins are reached (outbox recipients)."""
    rows = await session.exec(select(reach(User.id)).where(User.role == Role.ADMIN.value, col(User.active).is_(True)).order_by(User.id))
    return [r for r in rows.all() if r is not None]


# -- privacy --------------------------------------------------------------------------------------


def forgotten_name(user_id: int) -> str:
    """The name a forgotten user's records show from then on."""
    return f"已注销用户#{user_id}"


async def forget_user(session: AsyncSession, user_id: int) -> bool:
    """Anonymise a departing user: name -> 已注销用户#<id>, phone -> NULL, account deactivated, every
    channel identity deleted (the platforms' ids are personal data too; nothing reaches them again).

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
    await session.exec(delete(ChannelIdentity).where(col(ChannelIdentity.user_id) == user_id))  # type: ignore[call-overload]
    await session.exec(delete(LinkCode).where(col(LinkCode.user_id) == user_id))  # type: ignore[call-overload]
    await session.exec(update(AuditLog).where(col(AuditLog.actor_id) == user_id).values(actor=name))  # type: ignore[call-overload]
    return True
