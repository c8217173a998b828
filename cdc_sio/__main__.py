import sys

from cdc_sio.cli import main

sys.exit(main())
