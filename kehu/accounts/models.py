"""User accounts, role assignments and API tokens."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kehu.accounts.roles import ADMIN_ROLES, Capability, ManagerGrade, Role, capabilities_of
from kehu.core.scoping import DataScope, ScopedQuerySet, ScopePolicy


class UserQuerySet(ScopedQuerySet):
    pass


class UserManager(BaseUserManager.from_queryset(UserQuerySet)):
    use_in_migrations = True

    def create_user(self, username: str, password: str | None = None, **fields):
        """Low-level constructor for tests and data loaders; people are created with accounts.services."""
        user = self.model(username=username, **fields)
        user.set_password(password)
        user.save()
        return user


class Language(models.TextChoices):
    ZH_HANS = "zh-hans", "简体中文"
    EN = "en", "English"


class User(AbstractBaseUser):
    """A member of staff. Roles (with their data scopes) are in RoleAssignment."""

    username = models.CharField(_("username"), max_length=64, unique=True)
    full_name = models.CharField(_("full name"), max_length=100)
    unit = models.ForeignKey(
        "org.Unit",
        verbose_name=_("unit"),
        on_delete=models.PROTECT,
        related_name="people",
        null=True,
        blank=True,
    )
    position = models.CharField(_("position"), max_length=100, blank=True)
    manager_grade = models.CharField(
        _("customer manager grade"), max_length=16, choices=ManagerGrade.choices, blank=True
    )
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    email = models.EmailField(_("e-mail"), blank=True)
    language = models.CharField(
        _("language"), max_length=8, choices=Language.choices, default=Language.ZH_HANS
    )
    is_active = models.BooleanField(_("active"), default=True)
    must_change_password = models.BooleanField(_("must change password at next login"), default=True)
    password_changed_at = models.DateTimeField(_("password changed at"), null=True, blank=True)
    failed_login_count = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    date_joined = models.DateTimeField(_("created at"), default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "username"
    REQUIRED_FIELDS = ["full_name"]

    scope_policy = ScopePolicy(
        unit="unit",
        owners=("pk",),
        see_all_roles=frozenset({Role.SECURITY_ADMIN}),
        extra=lambda user: Q(pk=user.pk),
    )

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        ordering = ["username"]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.username})" if self.full_name else self.username

    # Roles are read on nearly every request; cache them on the instance.
    def _assignments(self) -> list[RoleAssignment]:
        cache = getattr(self, "_role_cache", None)
        if cache is None:
            cache = list(self.role_assignments.all()) if self.pk else []
            self._role_cache = cache
        return cache

    def forget_roles(self) -> None:
        self.__dict__.pop("_role_cache", None)

    def role_names(self) -> set[str]:
        return {a.role for a in self._assignments()}

    def data_scopes(self) -> set[str]:
        return {a.scope for a in self._assignments() if a.scope}

    def has_role(self, *roles: str) -> bool:
        return bool(self.role_names() & set(roles))

    def capabilities(self) -> frozenset[Capability]:
        return capabilities_of(self.role_names())

    def can(self, capability: Capability) -> bool:
        return self.is_active and capability in self.capabilities()

    def is_locked(self, now=None) -> bool:
        return self.locked_until is not None and self.locked_until > (now or timezone.now())

    def get_full_name(self) -> str:
        return self.full_name or self.username

    def get_short_name(self) -> str:
        return self.full_name or self.username


class RoleAssignment(models.Model):
    """One role held by one user, with the data scope that role gives them."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.CharField(_("role"), max_length=32, choices=Role.choices)
    scope = models.CharField(_("data scope"), max_length=16, choices=DataScope.choices, blank=True)
    granted_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    granted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("role assignment")
        constraints = [
            models.UniqueConstraint(fields=["user", "role"], name="role_assignment_unique_role"),
            # 三员分立: at most one of the three administrator roles per account.
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(role__in=sorted(ADMIN_ROLES)),
                name="role_assignment_one_admin_role",
            ),
            models.CheckConstraint(
                condition=Q(role__in=sorted(ADMIN_ROLES), scope="") | ~Q(role__in=sorted(ADMIN_ROLES)),
                name="role_assignment_admin_without_data_scope",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.role}/{self.scope or '-'}"


class ApiToken(models.Model):
    """A bearer token for the REST API. Only its SHA-256 digest is stored."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="first characters, to recognise a token in lists")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("API token")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user_id})"


class UnknownLoginThrottle(models.Model):
    """Failed sign-ins under a username that has no account, counted like a real account's.

    Without it, "locked" would only ever be answered for real accounts, telling an attacker which
    usernames exist. Keyed by the keyed fingerprint of the name, never the name itself.
    """

    fingerprint = models.CharField(max_length=16, unique=True)
    failed_login_count = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("failed sign-ins under an unknown username")

    def __str__(self) -> str:
        return self.fingerprint

    def is_locked(self, now=None) -> bool:
        return self.locked_until is not None and self.locked_until > (now or timezone.now())
