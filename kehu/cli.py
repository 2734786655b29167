"""The ``kehu`` console command: Django's management commands plus Kehu's own, from any directory.

``kehu help`` lists the commands. Names with dashes map to management commands with underscores
(``kehu gen-data`` runs ``gen_data``).
"""

from __future__ import annotations

import os
import sys

# Development commands that never serve a request or touch production data: they run with the
# development settings when no production secret is configured, instead of refusing to start.
OFFLINE_COMMANDS = {"makemigrations", "makemessages", "compilemessages", "help"}

ALIASES = {
    "gen-data": "gen_data",
    "rotate-data-keys": "rotate_data_keys",
    "cleanup-files": "cleanup_files",
    "--help": "help",
    "-h": "help",
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kehu.settings")
    if len(argv) < 2:
        argv.append("help")
    argv[1] = ALIASES.get(argv[1], argv[1])
    if argv[1] in OFFLINE_COMMANDS and not os.environ.get("KEHU_SECRET_KEY"):
        os.environ.setdefault("KEHU_DEBUG", "1")
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
