"""A small mutation runner over the safety-critical modules (issue 19): `python -m tests.mutations`.

Each mutation in `catalog.MUTATIONS` is a one-line bug - an exact source snippet and its
replacement - planted in a private copy of the code (pipeline/, flows/, store_schema/, tests/ and
pyproject.toml copied to a temporary directory; the working tree is only read). The tests listed
for it are run there; a mutation is *killed* when they fail and *survives* when they pass, which
means no test notices the bug. Not part of `make test` (nothing here is named test_*).

    python -m tests.mutations              # every mutation: a table, exit 1 if one survived
    python -m tests.mutations --list       # what would run
    python -m tests.mutations --only lock  # ids or paths containing "lock"
    python -m tests.mutations --json out.json
"""
