"""``kehu policy validate|load|list|show|activate|simulate``: the rules as versioned documents.

validate FILE                 check a YAML policy; every problem with its line; exit 1 if any
load FILE [--comment TEXT]    store it as the next version of the policy it names
list                          every version, which month each applies from
show NAME [VERSION]           print a version's document (default: the latest)
activate NAME VERSION --from YYYY-MM     closes of that month and later use this version
simulate FILE --month YYYY-MM [--changed CSV]   compare with the policy in force, write nothing
         (or --edit PATH=VALUE … instead of FILE: the policy in force with edited thresholds)
The language: docs/policy-language.md.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.core.context import request_context
from kehu.core.errors import ServiceError
from kehu.core.management.commands._common import acting_user


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CommandError(_("Cannot read %(p)s: %(r)s") % {"p": path, "r": exc.strerror or exc}) from None
    except UnicodeDecodeError:
        raise CommandError(_("%(p)s is not UTF-8 text.") % {"p": path}) from None


class Command(BaseCommand):
    help = "Validate, load, list, show, activate and simulate policy documents."

    def add_arguments(self, parser):
        subs = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        p = subs.add_parser("validate", help="check a policy document")
        p.add_argument("file", metavar="FILE")
        p = subs.add_parser("load", help="store a document as the next version")
        p.add_argument("file", metavar="FILE")
        p.add_argument("--comment", default="")
        p.add_argument("--as", dest="as_user", metavar="USERNAME")
        subs.add_parser("list", help="every version and the months they apply from")
        p = subs.add_parser("show", help="print a version's document")
        p.add_argument("name")
        p.add_argument("version", nargs="?", type=int)
        p = subs.add_parser("activate", help="use a version from a month on")
        p.add_argument("name")
        p.add_argument("version", type=int)
        p.add_argument("--from", dest="valid_from", required=True, metavar="YYYY-MM")
        p.add_argument("--comment", default="")
        p.add_argument("--as", dest="as_user", metavar="USERNAME")
        p = subs.add_parser("simulate", help="compare a draft with the policy in force for a month")
        p.add_argument("file", metavar="FILE", nargs="?")
        p.add_argument("--month", required=True, metavar="YYYY-MM")
        p.add_argument("--edit", action="append", default=[], metavar="PATH=VALUE",
                       help="change one constant of the policy in force (repeatable), e.g. "
                       "outputs.size.first_match[0].if.any[0].gte=6")  # fmt: skip
        p.add_argument(
            "--changed", metavar="CSV", help="write the customers that would change to this CSV file"
        )
        p.add_argument("--as", dest="as_user", metavar="USERNAME")

    def handle(self, *args, **options):
        with request_context(channel="cli"):
            try:
                getattr(self, f"_{options['action']}")(options)
            except ServiceError as exc:
                raise CommandError(str(exc)) from None

    def _validate(self, options):
        from kehu.policies.language import policy_parse

        parsed = policy_parse(_read(options["file"]))
        self.stdout.write(
            _("%(file)s: policy %(name)s is valid; outputs: %(outputs)s.")
            % {
                "file": options["file"],
                "name": parsed.name,
                "outputs": ", ".join(o.name for o in parsed.outputs),
            }
        )

    def _load(self, options):
        from kehu.policies.services import policy_load

        user = acting_user(options["as_user"], Capability.MANAGE_POLICIES, doing=_("load policies"))
        policy, created = policy_load(
            acting_user=user, text=_read(options["file"]), comment=options["comment"]
        )
        if created:
            self.stdout.write(_("Loaded %(p)s. Activate it with: kehu policy activate %(n)s %(v)s --from YYYY-MM")
                              % {"p": policy, "n": policy.name, "v": policy.version})  # fmt: skip
        else:
            self.stdout.write(_("%(p)s already holds this document; nothing changed.") % {"p": policy})

    def _list(self, options):
        from kehu.policies.models import Policy, PolicyActivation

        starts: dict[int, list[str]] = {}
        for activation in PolicyActivation.objects.order_by("valid_from"):
            starts.setdefault(activation.policy_id, []).append(f"{activation.valid_from:%Y-%m}")
        rows = list(Policy.objects.select_related("created_by").order_by("name", "version"))
        if not rows:
            self.stdout.write(_("No policies yet: kehu setup --pack NAME, or kehu policy load FILE."))
        for policy in rows:
            active = ", ".join(starts.get(policy.pk, [])) or "-"
            self.stdout.write(f"{policy.name:24} v{policy.version:<4} {policy.created_at:%Y-%m-%d %H:%M}  "
                              f"{policy.created_by.username:16} {_('from')}: {active:16} {policy.comment}")  # fmt: skip

    def _show(self, options):
        from kehu.policies.models import Policy

        policies = Policy.objects.filter(name=options["name"]).order_by("-version")
        if options["version"]:
            policies = policies.filter(version=options["version"])
        policy = policies.first()
        if policy is None:
            raise CommandError(_("No such policy."))
        self.stdout.write(policy.document)

    def _activate(self, options):
        from kehu.policies.services import parse_month, policy_activate

        user = acting_user(options["as_user"], Capability.MANAGE_POLICIES, doing=_("activate policies"))
        activation = policy_activate(acting_user=user, name=options["name"], version=options["version"],
                                     valid_from=parse_month(options["valid_from"]), comment=options["comment"])  # fmt: skip
        self.stdout.write(
            _("%(p)s applies from %(m)s.") % {"p": activation.policy, "m": options["valid_from"]}
        )

    def _simulate(self, options):
        from kehu.policies.services import parse_month
        from kehu.policies.simulation import policy_simulate

        if bool(options["file"]) == bool(options["edit"]):
            raise CommandError(
                _("Give either a draft FILE or --edit PATH=VALUE (the policy in force, edited).")
            )
        edits = {}
        for item in options["edit"]:
            path, sep, value = item.partition("=")
            if not sep:
                raise CommandError(_("--edit takes PATH=VALUE, not “%(e)s”.") % {"e": item})
            edits[path.strip()] = value.strip()
        user = acting_user(options["as_user"], Capability.MANAGE_POLICIES, doing=_("simulate policies"))
        simulation = policy_simulate(
            acting_user=user, month=parse_month(options["month"]),
            draft_text=_read(options["file"]) if options["file"] else None, edits=edits or None,
        )  # fmt: skip
        out = self.stdout
        out.write(_("%(m)s: %(n)s customers; now %(now)s, draft %(draft)s; %(c)s would change (%(s).1f s).")
                  % {"m": options["month"], "n": simulation.customers, "now": simulation.current_name or "-",
                     "draft": simulation.draft_name, "c": simulation.changed.height, "s": simulation.seconds})  # fmt: skip
        for output, values in simulation.distribution.items():
            if not values:
                continue
            out.write(f"\n{output}:")
            for value, counts in values.items():
                delta = counts["draft"] - counts["now"]
                out.write(f"  {value or '—':16} {counts['now']:>10} → {counts['draft']:>10}  ({delta:+d})")
            for before, after, n in simulation.moves.get(output, [])[:20]:
                out.write(f"    {before or '—'} → {after or '—'}: {n}")
        if options["changed"]:
            from kehu.customers.models import Customer

            codes = dict(Customer.objects.filter(pk__in=simulation.changed["customer_id"].to_list())
                         .values_list("pk", "code"))  # fmt: skip
            import polars as pl

            table = simulation.changed.with_columns(
                pl.col("customer_id")
                .replace_strict(codes, default=None, return_dtype=pl.Utf8)
                .alias("customer_code")
            ).drop("customer_id")
            table.select("customer_code", *[c for c in table.columns if c != "customer_code"]).write_csv(
                options["changed"]
            )
            out.write(_("\nThe customers that would change: %(f)s") % {"f": options["changed"]})
