"""factory_boy factories. They build rows directly (fast); behaviour under test goes through services."""

from __future__ import annotations

import factory
from django.utils import timezone

from kehu.accounts.models import RoleAssignment, User
from kehu.accounts.roles import DEFAULT_SCOPE
from kehu.org.models import Unit, UnitType, path_segment

TEST_PASSWORD = "Test#Pass2026"


class UnitTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UnitType
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"type{n}")
    name = factory.LazyAttribute(lambda o: o.code)
    rank = 0


class UnitFactory(factory.django.DjangoModelFactory):
    """A unit with a correct materialised path (parents must be saved first)."""

    class Meta:
        model = Unit
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"U{n:05d}")
    name = factory.Sequence(lambda n: f"单位{n}")
    unit_type = factory.SubFactory(UnitTypeFactory, code="station", name="加油站", rank=3)
    division_code = "370102"
    parent = None
    path = factory.Sequence(lambda n: f"~tmp{n}")

    @factory.post_generation
    def fix_path(obj, create, extracted, **kwargs):  # noqa: N805
        obj.path = (obj.parent.path if obj.parent else "") + path_segment(obj.pk)
        obj.depth = obj.parent.depth + 1 if obj.parent else 0
        Unit.objects.filter(pk=obj.pk).update(path=obj.path, depth=obj.depth)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    full_name = factory.Sequence(lambda n: f"员工{n}")
    unit = None
    # Tests read English messages; tests about the Chinese interface set language="zh-hans" themselves.
    language = "en"
    must_change_password = False
    password_changed_at = factory.LazyFunction(timezone.now)
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def roles(obj, create, extracted, **kwargs):  # noqa: N805
        obj.save()
        for item in extracted or ():
            role, scope = item if isinstance(item, tuple) else (item, None)
            RoleAssignment.objects.create(
                user=obj, role=role, scope=(scope if scope is not None else DEFAULT_SCOPE[role]) or ""
            )
        obj.forget_roles()


def sign_in(client, user):
    """A session as the login view leaves it: logged in and stamped for the session timeouts."""
    import time

    from kehu.accounts.middleware import SESSION_LAST_SEEN, SESSION_LOGIN_AT

    client.force_login(user)
    session = client.session
    session[SESSION_LOGIN_AT] = session[SESSION_LAST_SEEN] = time.time()
    session.save()
    return client
