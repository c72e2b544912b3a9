import sys

from improvd.training.rnnrbm.cli import main

sys.exit(main())
