"""``python -m unionfs``: the same as the ``unionfs`` console script (``zygote.client``: the
zygote's client, which starts the CLI for anything else)."""

import sys

from unionfs.zygote.client import main

sys.exit(main())
