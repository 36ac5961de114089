"""`python -m minixai.cli ...` runs the `minixai` command."""
import sys

from . import main

sys.exit(main())
