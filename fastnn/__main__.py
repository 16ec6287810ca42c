"""``python -m fastnn`` runs the ``fastnn`` command line (see :mod:`fastnn.cli`)."""
import sys

from fastnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
