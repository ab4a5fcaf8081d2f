import sys

from adcut.cli import main

sys.exit(main())
