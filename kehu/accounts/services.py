"""Writes for people: accounts, roles, passwords, logins and API tokens. Every write is audited."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.accounts.models import ApiToken, Language, RoleAssignment, UnknownLoginThrottle, User
from kehu.accounts.roles import ADMIN_ROLES, DEFAULT_SCOPE, Capability, ManagerGrade, Role
from kehu.audit.models import Outcome
from kehu.audit.services import audit_record, diff, snapshot
from kehu.core.errors import NotAllowed, ServiceError, require
from kehu.core.scoping import DataScope

USER_EDITABLE_FIELDS = ("full_name", "unit", "position", "manager_grade", "phone", "email", "language")


# ---------------------------------------------------------------- passwords


def _validate_password(password: str, user: User) -> None:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ServiceError(" ".join(exc.messages), field="password", code="weak_password") from None


def password_expired(user: User, now: datetime | None = None) -> bool:
    if user.must_change_password or user.password_changed_at is None:
        return True
    max_age = settings.KEHU_PASSWORD_MAX_AGE_DAYS
    return bool(max_age) and user.password_changed_at + timedelta(days=max_age) <= (now or timezone.now())


def password_change(*, acting_user: User, old_password: str, new_password: str) -> None:
    """A user changes their own password (also the forced change at first login and on expiry).

    A wrong current password counts towards the lockout like a failed login: a left-open session
    must not become a way to guess the password.
    """
    now = timezone.now()
    with transaction.atomic():
        # The locked row, not the request's copy: parallel guesses must count, and a stale copy must
        # never write an expired lock back.
        fresh = User.objects.select_for_update().get(pk=acting_user.pk)
        if fresh.is_locked(now):
            raise ServiceError(_locked_message(fresh.locked_until), field="old_password", code="locked")
        locked = None
        if not fresh.check_password(old_password):
            locked = _register_failure(fresh, now=now, channel="web", reason="wrong current password")
            wrong = True
        else:
            wrong = False
    if wrong:
        if locked is not None:
            raise ServiceError(locked.message, field="old_password", code="locked")
        raise ServiceError(_("The current password is not correct."), field="old_password")
    if old_password == new_password:
        raise ServiceError(_("The new password must differ from the current one."), field="new_password")
    _validate_password(new_password, acting_user)
    with transaction.atomic():
        acting_user.set_password(new_password)
        acting_user.must_change_password = False
        acting_user.password_changed_at = timezone.now()
        acting_user.save(update_fields=["password", "must_change_password", "password_changed_at"])
        revoked = api_tokens_revoke(acting_user)
        audit_record(actor=acting_user, action="auth.password_change", obj=acting_user,
                     extra={"tokens_revoked": revoked})  # fmt: skip


def _set_temporary_password(user: User, new_password: str) -> int:
    """A password the user must change at next sign-in; unlocks the account and revokes its API tokens.

    Call inside a transaction, after validating the password. Returns how many tokens were revoked.
    """
    user.set_password(new_password)
    user.must_change_password = True
    user.password_changed_at = timezone.now()
    user.failed_login_count = 0
    user.locked_until = None
    user.save(update_fields=["password", "must_change_password", "password_changed_at", "failed_login_count",
                             "locked_until"])  # fmt: skip
    return api_tokens_revoke(user)


def user_password_reset(*, acting_user: User, user: User, new_password: str) -> None:
    """The security administrator sets a temporary password; the user must change it at next login."""
    require(acting_user, Capability.MANAGE_USERS, _("Only the security administrator resets passwords."))
    if user.role_names() & ADMIN_ROLES:
        # Otherwise the security administrator could sign in as the audit or system administrator.
        raise NotAllowed(
            _("An administrator's password is reset on the server with “kehu changepassword”, not here.")
        )
    _validate_password(new_password, user)
    with transaction.atomic():
        revoked = _set_temporary_password(user, new_password)
        audit_record(
            actor=acting_user, action="user.password_reset", obj=user, extra={"tokens_revoked": revoked}
        )


# ---------------------------------------------------------------- login


class LoginFailed(Exception):
    def __init__(self, code: str, message: str, locked_until: datetime | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.locked_until = locked_until


def _locked_message(until: datetime) -> str:
    local = timezone.localtime(until)
    return _("Too many failed attempts: the account is locked until %(time)s.") % {
        "time": local.strftime("%Y-%m-%d %H:%M")
    }


def _register_failure(user: User, *, now: datetime, channel: str, reason: str) -> LoginFailed | None:
    """Count one failed password check and lock the account at the threshold (inside a transaction).

    Returns the lockout as a LoginFailed when this failure locked the account, else None.
    """
    user.failed_login_count += 1
    details = {"reason": reason, "consecutive_failures": user.failed_login_count, "channel": channel}
    audit_record(actor=user, action="auth.login_failed", obj=user, outcome=Outcome.FAILURE, extra=details)
    failure = None
    if user.failed_login_count >= settings.KEHU_LOCKOUT_THRESHOLD:
        user.locked_until = now + timedelta(minutes=settings.KEHU_LOCKOUT_MINUTES)
        user.failed_login_count = 0
        audit_record(actor=user, action="auth.lockout", obj=user, outcome=Outcome.DENIED,
                     extra={"locked_until": user.locked_until, "channel": channel})  # fmt: skip
        failure = LoginFailed("locked", _locked_message(user.locked_until), user.locked_until)
    user.save(update_fields=["failed_login_count", "locked_until"])
    return failure


def unknown_username_fingerprint(username: str) -> str:
    """How the trail names an unknown username: people type passwords into the username box.

    A keyed fingerprint, never the text: repeated attempts with the same name show the same
    fingerprint (to spot guessing), and an auditor can check a suspected name with this function.
    """
    key = hashlib.sha256(b"kehu.unknown-username:" + settings.SECRET_KEY.encode()).digest()
    digest = hmac.new(key, (username or "").strip().lower().encode(), hashlib.sha256).hexdigest()
    return f"?{digest[:12]}"


def _unknown_username_failure(username: str, *, now: datetime, channel: str) -> LoginFailed | None:
    """Count a failure under a name without an account exactly as for a real one (same lockout answer).

    The trail keeps only the name's keyed fingerprint: people type passwords into the username box.
    """
    fingerprint = unknown_username_fingerprint(username)
    throttle, _created = UnknownLoginThrottle.objects.select_for_update().get_or_create(
        fingerprint=fingerprint
    )
    if throttle.is_locked(now):
        audit_record(actor=None, actor_username=fingerprint, action="auth.login_failed", outcome=Outcome.DENIED,
                     extra={"reason": "unknown user, locked", "channel": channel})  # fmt: skip
        return LoginFailed("locked", _locked_message(throttle.locked_until), throttle.locked_until)
    throttle.failed_login_count += 1
    throttle.updated_at = now
    audit_record(actor=None, actor_username=fingerprint, action="auth.login_failed", outcome=Outcome.FAILURE,
                 extra={"reason": "unknown user", "consecutive_failures": throttle.failed_login_count,
                        "channel": channel})  # fmt: skip
    failure = None
    if throttle.failed_login_count >= settings.KEHU_LOCKOUT_THRESHOLD:
        throttle.locked_until = now + timedelta(minutes=settings.KEHU_LOCKOUT_MINUTES)
        throttle.failed_login_count = 0
        failure = LoginFailed("locked", _locked_message(throttle.locked_until), throttle.locked_until)
    throttle.save()
    return failure


def login_check(*, username: str, password: str, channel: str = "web") -> User:
    """Check a username and password, count failures and lock the account after too many.

    Returns the user on success; raises LoginFailed otherwise. The failure counter and the audit
    rows are committed whether or not the login succeeds.
    """
    invalid = _("The username or password is not correct.")
    failure: LoginFailed | None = None
    now = timezone.now()
    with transaction.atomic():
        user = User.objects.select_for_update().filter(username=username).first()
        if user is None:
            User(username=username).set_password(password)  # same work as a real check: no user enumeration
            failure = _unknown_username_failure(username, now=now, channel=channel) or LoginFailed(
                "invalid", invalid
            )
        elif user.is_locked(now):
            user.check_password(password)  # same work as an unlocked account: the answer time tells nothing
            audit_record(actor=user, action="auth.login_failed", obj=user, outcome=Outcome.DENIED,
                         extra={"reason": "locked", "channel": channel})  # fmt: skip
            failure = LoginFailed("locked", _locked_message(user.locked_until), user.locked_until)
        elif not user.check_password(password):
            failure = _register_failure(user, now=now, channel=channel, reason="wrong password")
            failure = failure or LoginFailed("invalid", invalid)
        elif not user.is_active:
            audit_record(actor=user, action="auth.login_failed", obj=user, outcome=Outcome.DENIED,
                         extra={"reason": "inactive", "channel": channel})  # fmt: skip
            failure = LoginFailed("invalid", invalid)
        else:
            user.failed_login_count = 0
            user.locked_until = None
            user.last_login = now
            user.save(update_fields=["failed_login_count", "locked_until", "last_login"])
            audit_record(actor=user, action="auth.login", obj=user, extra={"channel": channel})
    if failure is not None:
        raise failure
    return user


def logout_record(*, acting_user: User, reason: str = "user") -> None:
    with transaction.atomic():
        audit_record(actor=acting_user, action="auth.logout", obj=acting_user, extra={"reason": reason})


def user_end_sessions(user: User) -> int:
    """Delete every web session of the user. Sessions are few and short-lived, so a scan is cheap."""
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
            ended += 1
    return ended


# ---------------------------------------------------------------- API tokens


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_issue(*, username: str, password: str) -> tuple[str, ApiToken]:
    """Exchange a username and password for a bearer token; the same lockout applies as for the web."""
    user = login_check(username=username, password=password, channel="api")
    if password_expired(user):
        with transaction.atomic():
            audit_record(actor=user, action="auth.token_refused", obj=user, outcome=Outcome.DENIED,
                         extra={"reason": "password change required", "channel": "api"})  # fmt: skip
        raise LoginFailed("password_change_required", _("Change your password in the web interface first."))
    raw = secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, digest=_digest(raw), prefix=raw[:8],
            expires_at=timezone.now() + timedelta(hours=settings.KEHU_API_TOKEN_HOURS),
        )  # fmt: skip
        audit_record(actor=user, action="auth.token_issue", object_type="accounts.apitoken",
                     object_id=token.pk, object_repr=f"{token.prefix}…")  # fmt: skip
    return raw, token


def api_token_user(raw: str) -> User | None:
    """The active, unlocked user a bearer token belongs to, or None."""
    if not raw:
        return None
    now = timezone.now()
    token = (
        ApiToken.objects.select_related("user", "user__unit")
        .filter(digest=_digest(raw), revoked_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if (
        token is None
        or not token.user.is_active
        or token.user.is_locked(now)
        or password_expired(token.user, now)
    ):
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_token_revoke(*, acting_user: User, raw: str) -> bool:
    """Revoke one token (an API client signing out); True when it was live."""
    with transaction.atomic():
        token = ApiToken.objects.filter(
            digest=_digest(raw), user=acting_user, revoked_at__isnull=True
        ).first()
        if token is None:
            return False
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=acting_user, action="auth.token_revoke", object_type="accounts.apitoken",
                     object_id=token.pk, object_repr=f"{token.prefix}…")  # fmt: skip
    return True


def api_tokens_revoke(user: User) -> int:
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())


# ---------------------------------------------------------------- accounts and roles


@dataclass(frozen=True)
class RoleGrant:
    role: str
    scope: str | None = None  # None: the role's default scope


USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")


def _check_username(username: str) -> str:
    username = (username or "").strip()
    if not username:
        raise ServiceError(_("A username is required."), field="username")
    if not USERNAME_PATTERN.match(username):
        raise ServiceError(
            _(
                "A username has 2 to 64 characters: letters, digits and . _ @ - (starting with a letter or digit)."
            ),
            field="username",
        )
    return username


def _check_user_fields(fields: dict, current: User | None = None) -> None:
    grade = fields.get("manager_grade", "")
    if grade and grade not in ManagerGrade.values:
        raise ServiceError(_("Unknown customer manager grade “%(g)s”.") % {"g": grade}, field="manager_grade")
    lang = fields.get("language")
    if lang is not None and lang not in Language.values:
        raise ServiceError(_("Unknown language “%(l)s”.") % {"l": lang}, field="language")
    unit = fields.get("unit")
    unchanged = current is not None and unit is not None and unit.pk == current.unit_id
    if unit is not None and not unit.is_active and not unchanged:
        raise ServiceError(_("The unit %(u)s is inactive.") % {"u": unit}, field="unit")


def user_create(
    *,
    acting_user: User,
    username: str,
    full_name: str,
    password: str = "",
    unit=None,
    position: str = "",
    manager_grade: str = "",
    phone: str = "",
    email: str = "",
    language: str = Language.ZH_HANS,
    roles: list[RoleGrant] | tuple[RoleGrant, ...] = (),
    password_hash: str = "",
) -> User:
    """Create an account with a temporary password that must be changed at first login.

    ``password_hash`` is for loaders that create many accounts with one known password (the demo):
    an already-hashed password (``make_password``) used instead of ``password``, so Argon2 runs once.
    """
    require(acting_user, Capability.MANAGE_USERS, _("Only the security administrator creates accounts."))
    username = _check_username(username)
    if not (full_name or "").strip():
        raise ServiceError(_("A full name is required."), field="full_name")
    fields = dict(full_name=full_name.strip(), unit=unit, position=position, manager_grade=manager_grade,
                  phone=phone, email=email, language=language)  # fmt: skip
    _check_user_fields(fields)
    user = User(username=username, must_change_password=True, password_changed_at=timezone.now(), **fields)
    if password_hash:
        user.password = password_hash
    else:
        _validate_password(password, user)
        user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
            audit_record(actor=acting_user, action="user.create", obj=user, changes=snapshot(user))
            for grant in roles:
                _role_grant(acting_user=acting_user, user=user, role=grant.role, scope=grant.scope)
    except IntegrityError:
        if User.objects.filter(username=username).exists():
            raise ServiceError(
                _("The username “%(u)s” is taken.") % {"u": username}, field="username"
            ) from None
        raise
    return user


def user_update(*, acting_user: User, user: User, **fields) -> User:
    require(acting_user, Capability.MANAGE_USERS, _("Only the security administrator edits accounts."))
    # Editing one's own account is harmless: administrators hold no business role (see _role_grant),
    # so their unit gives them no data scope, and roles are never granted to oneself.
    unknown = set(fields) - set(USER_EDITABLE_FIELDS)
    if unknown:
        raise ServiceError(_("Not editable: %(fields)s") % {"fields": ", ".join(sorted(unknown))})
    _check_user_fields(fields, current=user)
    with transaction.atomic():
        before = snapshot(user)
        for name, value in fields.items():
            setattr(user, name, value)
        # Only the edited fields: a stale copy must not write back an old password, lock or activity flag.
        user.save(update_fields=list(fields))
        changes = diff(before, snapshot(user))
        if changes:
            audit_record(actor=acting_user, action="user.update", obj=user, changes=changes)
    return user


def _guard_last_administrator(user: User, roles: set[str] | None = None) -> None:
    """Refuse to leave the system without an active holder of each administrator role (三员).

    ``roles``: the administrator roles being taken away (default: all the user holds). Call inside a
    transaction: the role rows are locked first, so two administrators removing each other at the
    same moment are serialised and the second is refused.
    """
    list(RoleAssignment.objects.select_for_update().filter(role__in=sorted(ADMIN_ROLES)).values_list("pk"))
    held = set(
        RoleAssignment.objects.filter(user=user, role__in=sorted(ADMIN_ROLES)).values_list("role", flat=True)
    )
    for role in sorted(held if roles is None else held & roles):
        others = User.objects.filter(is_active=True, role_assignments__role=role).exclude(pk=user.pk).count()
        if others == 0:
            raise ServiceError(
                _("%(user)s is the last active holder of the role “%(role)s”; appoint another first.")
                % {"user": user.username, "role": Role(role).label}
            )


def user_deactivate(*, acting_user: User, user: User, reason: str = "") -> User:
    """Deactivate an account: its sessions end and its API tokens are revoked at once."""
    require(acting_user, Capability.MANAGE_USERS, _("Only the security administrator deactivates accounts."))
    if user.pk == acting_user.pk:
        raise ServiceError(_("You cannot deactivate your own account."))
    with transaction.atomic():
        _guard_last_administrator(user)
        user.is_active = False
        user.save(update_fields=["is_active"])
        ended = user_end_sessions(user)
        revoked = api_tokens_revoke(user)
        audit_record(actor=acting_user, action="user.deactivate", obj=user, changes={"is_active": [True, False]},
                     extra={"reason": reason, "sessions_ended": ended, "tokens_revoked": revoked})  # fmt: skip
    return user


def user_reactivate(*, acting_user: User, user: User) -> User:
    require(acting_user, Capability.MANAGE_USERS, _("Only the security administrator reactivates accounts."))
    with transaction.atomic():
        user.is_active = True
        user.failed_login_count = 0
        user.locked_until = None
        user.save(update_fields=["is_active", "failed_login_count", "locked_until"])
        audit_record(
            actor=acting_user, action="user.reactivate", obj=user, changes={"is_active": [False, True]}
        )
    return user


def user_unlock(*, acting_user: User, user: User) -> User:
    require(acting_user, Capability.MANAGE_USERS, _("Only the security administrator unlocks accounts."))
    with transaction.atomic():
        user.failed_login_count = 0
        user.locked_until = None
        user.save(update_fields=["failed_login_count", "locked_until"])
        audit_record(actor=acting_user, action="user.unlock", obj=user)
    return user


def _role_grant(*, acting_user: User, user: User, role: str, scope: str | None) -> RoleAssignment:
    user.forget_roles()  # decide on the roles as stored, not as cached earlier in the request
    if role not in Role.values:
        raise ServiceError(_("Unknown role “%(r)s”.") % {"r": role}, field="role")
    if user.pk == acting_user.pk:
        raise NotAllowed(_("Nobody may grant roles to themselves."))
    if role in ADMIN_ROLES:
        if scope:
            raise ServiceError(_("Administrator roles carry no data scope."), field="scope")
        scope = ""
        held = user.role_names() & ADMIN_ROLES - {role}
        business = user.role_names() - ADMIN_ROLES
        if business:
            raise ServiceError(
                _("Separation of duties: an administrator account holds no business role, and %(user)s holds "
                  "the role “%(held)s”.") % {"user": user.username, "held": Role(sorted(business)[0]).label},
                field="role", code="separation_of_duties",
            )  # fmt: skip
        if held:
            raise ServiceError(
                _("Separation of duties: %(user)s already holds the role “%(held)s”; no account may hold two "
                  "administrator roles.") % {"user": user.username, "held": Role(next(iter(held))).label},
                field="role", code="separation_of_duties",
            )  # fmt: skip
    else:
        admin = user.role_names() & ADMIN_ROLES
        if admin:
            raise ServiceError(
                _("Separation of duties: %(user)s holds the administrator role “%(held)s” and may hold no "
                  "business role.")
                % {"user": user.username, "held": Role(sorted(admin)[0]).label},
                field="role", code="separation_of_duties",
            )  # fmt: skip
        scope = scope or DEFAULT_SCOPE[role]
        if scope not in DataScope.values:
            raise ServiceError(_("Unknown data scope “%(s)s”.") % {"s": scope}, field="scope")
        if scope in (DataScope.UNIT, DataScope.SUBTREE) and user.unit_id is None:
            raise ServiceError(
                _("A unit-based data scope needs the person to belong to a unit."), field="scope"
            )
    try:
        with transaction.atomic():
            assignment, created = RoleAssignment.objects.get_or_create(
                user=user, role=role, defaults={"scope": scope, "granted_by": acting_user}
            )
            if not created and assignment.scope != scope:
                old = assignment.scope
                assignment.scope = scope
                assignment.granted_by = acting_user
                assignment.save(update_fields=["scope", "granted_by"])
                audit_record(actor=acting_user, action="role.change_scope", obj=user,
                             changes={"role": role, "scope": [old, scope]})  # fmt: skip
            elif created:
                audit_record(actor=acting_user, action="role.grant", obj=user,
                             changes={"role": role, "scope": scope})  # fmt: skip
    except IntegrityError:
        raise ServiceError(
            _("Separation of duties: no account may hold two administrator roles."), field="role",
            code="separation_of_duties",
        ) from None  # fmt: skip
    user.forget_roles()
    return assignment


def role_grant(*, acting_user: User, user: User, role: str, scope: str | None = None) -> RoleAssignment:
    """Give a user a role with a data scope (default: the role's usual scope)."""
    require(acting_user, Capability.MANAGE_USERS, _("Only the security administrator grants roles."))
    with transaction.atomic():
        return _role_grant(acting_user=acting_user, user=user, role=role, scope=scope)


def role_revoke(*, acting_user: User, user: User, role: str) -> None:
    require(acting_user, Capability.MANAGE_USERS, _("Only the security administrator revokes roles."))
    if user.pk == acting_user.pk:
        raise NotAllowed(_("Nobody may change their own roles."))
    with transaction.atomic():
        if role in ADMIN_ROLES:
            _guard_last_administrator(user, {role})
        deleted, _rows = RoleAssignment.objects.filter(user=user, role=role).delete()
        if deleted:
            audit_record(actor=acting_user, action="role.revoke", obj=user, changes={"role": role})
    user.forget_roles()


def bootstrap_security_admin(*, username: str, full_name: str, password: str, unit=None) -> User:
    """Create the first security administrator (``kehu createsuperuser``), who then creates everyone else.

    Refused once any security administrator exists: later accounts are made by a security administrator.
    """
    if RoleAssignment.objects.filter(role=Role.SECURITY_ADMIN).exists():
        raise ServiceError(_("A security administrator already exists; they create further accounts."))
    user = User(username=username, full_name=full_name, unit=unit, must_change_password=True,
                password_changed_at=timezone.now())  # fmt: skip
    _validate_password(password, user)
    user.set_password(password)
    with transaction.atomic():
        user.save()
        RoleAssignment.objects.create(user=user, role=Role.SECURITY_ADMIN, scope="")
        audit_record(
            actor=None, actor_username="(setup)", action="user.create", obj=user, changes=snapshot(user)
        )
        audit_record(actor=None, actor_username="(setup)", action="role.grant", obj=user,
                     changes={"role": Role.SECURITY_ADMIN, "scope": ""})  # fmt: skip
    return user


def user_set_language(*, acting_user: User, language: str) -> User:
    """A user picks their own interface language."""
    if language not in Language.values:
        raise ServiceError(_("Unknown language “%(l)s”.") % {"l": language}, field="language")
    if acting_user.language != language:
        with transaction.atomic():
            old = acting_user.language
            acting_user.language = language
            acting_user.save(update_fields=["language"])
            audit_record(actor=acting_user, action="user.set_language", obj=acting_user,
                         changes={"language": [old, language]})  # fmt: skip
    return acting_user


def operator_password_reset(*, username: str, new_password: str) -> User:
    """``kehu changepassword``: someone with access to the server sets a temporary password.

    The way to reset an administrator's password (the web refuses that, see user_password_reset),
    and the way back in when the only security administrator forgot theirs. Also unlocks the account.
    """
    user = User.objects.filter(username=username).first()
    if user is None:
        raise ServiceError(_("No account “%(u)s”.") % {"u": username}, field="username")
    _validate_password(new_password, user)
    with transaction.atomic():
        revoked = _set_temporary_password(user, new_password)
        audit_record(actor=None, actor_username="(operator)", action="user.password_reset", obj=user,
                     extra={"by": "kehu changepassword", "tokens_revoked": revoked})  # fmt: skip
    return user
