"""The generic scoping mechanism, exercised on units and people."""

import pytest
from django.http import Http404

from kehu.accounts.models import User
from kehu.core.scoping import get_visible_or_404
from kehu.org.models import Unit


def codes(qs):
    return sorted(u.code for u in qs)


def test_customer_manager_sees_own_unit_chain_only(people, org):
    assert codes(Unit.objects.visible_to(people.alice)) == ["A1", "CA", "P"]


def test_peer_in_other_branch_sees_nothing_of_it(people, org):
    assert (
        not Unit.objects.visible_to(people.bob).filter(pk__in=[org.city_a.pk, org.a1.pk, org.a2.pk]).exists()
    )
    assert not User.objects.visible_to(people.bob).filter(pk=people.alice.pk).exists()


def test_superior_unit_sees_whole_subtree(people, org):
    assert codes(Unit.objects.visible_to(people.head_a)) == ["A1", "A2", "CA", "P"]
    assert set(User.objects.visible_to(people.head_a)) >= {people.alice, people.alice_peer, people.head_a}
    assert people.bob not in User.objects.visible_to(people.head_a)


def test_out_of_scope_is_404_like_missing(people, org):
    with pytest.raises(Http404):
        get_visible_or_404(Unit, people.bob, pk=org.a1.pk)
    with pytest.raises(Http404):
        get_visible_or_404(Unit, people.bob, pk=999999)


def test_anonymous_and_inactive_see_nothing(people, org):
    from django.contrib.auth.models import AnonymousUser

    assert not Unit.objects.visible_to(AnonymousUser()).exists()
    people.head_p.is_active = False
    assert not Unit.objects.visible_to(people.head_p).exists()
