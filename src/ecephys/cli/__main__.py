"""``python -m ecephys.cli``: the same as the ``ecephys`` command."""

import sys

from ecephys.cli import main

sys.exit(main())
