"""``python -m robotmia_frames.cli``: the same as the ``robotmia-frames`` command."""

import sys

from . import main

sys.exit(main())
