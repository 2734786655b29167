"""Password rules (MLPS level 3) and password expiry."""

from __future__ import annotations

import string
from datetime import timedelta

import pytest
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.utils import timezone, translation
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kehu.accounts.models import User
from kehu.accounts.services import password_change, password_expired
from kehu.audit.models import AuditEvent
from kehu.core.errors import ServiceError


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def validate(password: str, username: str = "wangli") -> None:
    password_validation.validate_password(password, User(username=username))


def codes(password: str, username: str = "wangli") -> set[str]:
    try:
        validate(password, username)
    except ValidationError as exc:
        return {e.code for e in exc.error_list}
    return set()


# ---------------------------------------------------------------- the rules, one by one


@pytest.mark.parametrize("password", ["", "Ab1!", "Ab1!xyz", "短密码Aa1!"[:7]])
def test_shorter_than_8_is_rejected(password):
    assert "password_too_short" in codes(password)


@pytest.mark.parametrize(
    "password",
    [
        "abcdefgh",  # 1 class
        "abcdefg1",  # lower + digit
        "ABCDEFG!",  # upper + symbol
        "abcdEFGH",  # lower + upper
        "12345678!",  # digit + symbol
        "汉字汉字汉字ab1",  # Chinese characters are no class of their own
    ],
)
def test_8_characters_with_two_classes_or_fewer_are_rejected(password):
    assert len(password) >= 8
    assert "password_too_simple" in codes(password)


@pytest.mark.parametrize("password", ["Kehu2026", "kehu#2026", "KEHU#2026", "Kehu#crm", "Zq7!Zq7!"])
def test_8_characters_with_three_or_four_classes_are_accepted(password):
    assert codes(password) == set()


def test_exactly_8_characters_is_enough():
    assert codes("Rt5$pq9z") == set()
    assert "password_too_short" in codes("Rt5$pq9")


@pytest.mark.parametrize("password", ["Wangli#2026", "wangli#2026X", "X#WANGLI2026", "2026#wAnGlI!"])
def test_password_containing_the_username_in_any_case_is_rejected(password):
    assert "password_has_username" in codes(password, username="wangli")
    assert "password_has_username" in codes(password, username="WangLi")
    # the same password is fine for somebody else
    assert codes(password, username="zhangbo") == set()


@pytest.mark.parametrize("password", ["P@ssw0rd", "Password1!", "1qaz@WSX"])
def test_common_password_is_rejected_even_if_complex(password):
    assert "password_too_common" in codes(password)


def test_all_problems_are_reported_at_once():
    assert codes("wangli", username="wangli") >= {"password_too_short", "password_too_simple",
                                                  "password_has_username"}  # fmt: skip


# ---------------------------------------------------------------- property: what gets through


def ascii_classes(password: str) -> int:
    """An oracle written independently of kehu.accounts.passwords."""
    return sum(
        [
            any(c in string.ascii_lowercase for c in password),
            any(c in string.ascii_uppercase for c in password),
            any(c in string.digits for c in password),
            any(c in string.punctuation or c == " " for c in password),
        ]
    )


password_alphabet = st.sampled_from(string.ascii_letters + string.digits + string.punctuation + " 汉字é")
usernames = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=8)


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=st.text(alphabet=password_alphabet, min_size=0, max_size=16), username=usernames)
def test_any_accepted_password_is_long_mixed_and_free_of_the_username(password, username):
    try:
        validate(password, username)
    except ValidationError:
        return
    assert len(password) >= 8
    assert ascii_classes(password) >= 3
    assert username.lower() not in password.lower()


@hsettings(max_examples=200, deadline=None)
@given(
    lower=st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=4),
    upper=st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=4),
    digits=st.text(alphabet=string.digits, min_size=1, max_size=4),
    filler=st.text(alphabet=string.ascii_lowercase, min_size=5, max_size=8),
)
def test_long_three_class_passwords_without_the_username_are_accepted(lower, upper, digits, filler):
    password = f"{upper}{filler}{digits}{lower}"
    assume("wangli" not in password.lower())
    # an uncommon, mixed password: the rules must not reject it
    assume(password.lower() not in {"password1", "qwerty123"})
    try:
        validate(password)
    except ValidationError as exc:
        assert {e.code for e in exc.error_list} == {"password_too_common"}


# ---------------------------------------------------------------- expiry


@pytest.mark.django_db
class TestPasswordExpired:
    def make(self, **fields):
        return User(username="zhao", full_name="赵", **fields)

    def test_must_change_password_means_expired(self):
        assert password_expired(self.make(must_change_password=True, password_changed_at=timezone.now()))

    def test_never_set_means_expired(self):
        assert password_expired(self.make(must_change_password=False, password_changed_at=None))

    def test_recent_password_is_not_expired(self):
        user = self.make(must_change_password=False, password_changed_at=timezone.now() - timedelta(days=89))
        assert not password_expired(user)

    def test_older_than_90_days_is_expired(self):
        now = timezone.now()
        user = self.make(must_change_password=False, password_changed_at=now - timedelta(days=90, seconds=1))
        assert password_expired(user, now=now)
        user.password_changed_at = now - timedelta(days=89, hours=23)
        assert not password_expired(user, now=now)

    def test_max_age_is_configurable(self, settings):
        now = timezone.now()
        user = self.make(must_change_password=False, password_changed_at=now - timedelta(days=31))
        settings.KEHU_PASSWORD_MAX_AGE_DAYS = 30
        assert password_expired(user, now=now)
        settings.KEHU_PASSWORD_MAX_AGE_DAYS = 45
        assert not password_expired(user, now=now)

    def test_max_age_zero_disables_expiry(self, settings):
        settings.KEHU_PASSWORD_MAX_AGE_DAYS = 0
        user = self.make(
            must_change_password=False, password_changed_at=timezone.now() - timedelta(days=3650)
        )
        assert not password_expired(user)


# ---------------------------------------------------------------- changing one's own password


def test_password_change_applies_the_rules_and_clears_the_flag(people, password):
    alice = people.alice
    with pytest.raises(ServiceError) as exc:
        password_change(acting_user=alice, old_password="wrong", new_password="Fresh#Pass2027")
    assert exc.value.field == "old_password"
    with pytest.raises(ServiceError) as exc:
        password_change(acting_user=alice, old_password=password, new_password=password)
    assert exc.value.field == "new_password"
    with pytest.raises(ServiceError) as exc:
        password_change(acting_user=alice, old_password=password, new_password="Alice#2027x")
    assert exc.value.field == "password" and exc.value.code == "weak_password"
    with pytest.raises(ServiceError):
        password_change(acting_user=alice, old_password=password, new_password="short1A")

    User.objects.filter(pk=alice.pk).update(must_change_password=True)
    alice.refresh_from_db()
    before = timezone.now()
    password_change(acting_user=alice, old_password=password, new_password="Fresh#Pass2027")
    alice.refresh_from_db()
    assert alice.check_password("Fresh#Pass2027")
    assert not alice.must_change_password
    assert alice.password_changed_at >= before
    assert not password_expired(alice)
    event = AuditEvent.objects.get(action="auth.password_change")
    assert event.actor_id == alice.pk and event.object_id == str(alice.pk)
    assert "Fresh#Pass2027" not in str(event.changes) + str(event.extra)
