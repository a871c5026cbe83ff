"""The unit tier: every test under tests/unit is ``unit`` (tests/conftest.py marks it by folder)
and starts no server and runs no helm. The package's modules are tested at the top, the rest by
area: chart/, iam/, release/, operator/, reliability/, repo/."""
