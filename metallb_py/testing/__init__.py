"""Test infrastructure that ships with the package: the lab and the test suite both use it."""
