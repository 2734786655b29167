"""Cross-cutting building blocks: request context, data scoping, division codes, CLI glue."""
