"""`python -m plait` is `plait`."""

import sys

from plait.cli import main

sys.exit(main())
