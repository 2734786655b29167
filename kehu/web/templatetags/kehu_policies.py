"""Template tags of the classification pages: the customer header's badges from its latest close."""

from __future__ import annotations

from django import template

register = template.Library()


@register.inclusion_tag("web/policies/_standing_badges.html")
def standing_badges(customer):
    """The customer's current outputs (``Customer.standing``, the latest closed month) as labelled badges
    and its responsible unit level; the labels come from the policy that applied to that month."""
    from kehu.policies.selectors import policy_in_force
    from kehu.web.views.policies import level_text, output_cells, parsed_policy

    if not customer.standing or customer.standing_month is None:
        return {"badges": []}
    policy = policy_in_force(month=customer.standing_month)
    if policy is None:
        return {"badges": []}
    cells = [
        c for c in output_cells(parsed_policy(policy), customer.standing) if c["value"] not in ("", "false")
    ]
    return {
        "badges": cells,
        "month": customer.standing_month,
        "level": level_text(customer.responsible_level) if customer.responsible_level else "",
    }
