"""Thin stand-ins for external services and SDK surfaces, used by the tests."""
