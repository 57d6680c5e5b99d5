"""``python -m search.cli``: the ``ctmevo`` command."""

import sys

from search.cli import main

sys.exit(main())
