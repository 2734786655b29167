"""The web app shell: login, navigation by role, home pages, organisation browser, people admin, audit search."""
