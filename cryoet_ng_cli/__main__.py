"""``python -m cryoet_ng_cli``: the same as the ``cryoet-ng`` command."""

import sys

from cryoet_ng_cli import main

sys.exit(main())
