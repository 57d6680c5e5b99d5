"""``python -m search.cli``: the ``ctmevo`` command."""

import sys

from search.cli.app import main

sys.exit(main())
