"""Test support shared by every app's tests: environment defaults, factories and a cast of people."""
