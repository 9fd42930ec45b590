"""python -m minbert.course: see minbert/course/cli.py."""
import sys

from .cli import main

sys.exit(main())
