"""Web views, thin: parse the input, call one service or selector, render. Rules live in services."""
