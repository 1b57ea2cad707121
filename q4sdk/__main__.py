import sys

from q4sdk.cli import main

sys.exit(main())
