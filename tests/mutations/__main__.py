"""`python -m tests.mutations`: see tests/mutations/__init__.py."""

import sys

from tests.mutations.runner import main

sys.exit(main())
