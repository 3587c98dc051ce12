"""``python -m flash_db``: the ``flash-db`` command."""

import sys

from flash_db.cli import main

sys.exit(main())
