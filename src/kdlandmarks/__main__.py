import sys

from kdlandmarks.cli import main

sys.exit(main())
