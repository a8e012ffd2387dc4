"""``python -m jaxbp.cli``: the ``jaxbp`` command (``jaxbp.cli`` handles early signals)."""

import sys

from jaxbp.cli import main

sys.exit(main())
