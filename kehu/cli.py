"""The ``kehu`` console command: Django's management commands plus Kehu's own, from any directory.

``kehu help`` lists the commands. Names with dashes map to management commands with underscores
(``kehu gen-data`` runs ``gen_data``).
"""

from __future__ import annotations

import os
import sys

ALIASES = {"gen-data": "gen_data", "rotate-data-keys": "rotate_data_keys", "--help": "help", "-h": "help"}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kehu.settings")
    if len(argv) < 2:
        argv.append("help")
    argv[1] = ALIASES.get(argv[1], argv[1])
    argv[0] = "kehu"
    from django.core.exceptions import ImproperlyConfigured

    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(argv)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"kehu: configuration error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
