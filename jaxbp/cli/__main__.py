"""``python -m jaxbp.cli``: the ``jaxbp`` command."""

import sys

from jaxbp.cli import main

sys.exit(main())
