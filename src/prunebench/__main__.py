"""`python -m prunebench ...` is the `prunebench` console script."""
import sys

from prunebench.cli import main

sys.exit(main())
