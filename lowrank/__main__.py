"""``python -m lowrank``: execute, strip or normalize notebooks (see :mod:`lowrank.profiles`)."""

import sys

from .profiles import main

sys.exit(main())
