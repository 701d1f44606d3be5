"""Test harness: real databases and real processes, started and stopped by the tests themselves."""
