import sys

from faceres.cli import main

sys.exit(main())
