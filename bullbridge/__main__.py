import sys

from bullbridge.cli import main

sys.exit(main())
