"""One data-parallel worker, as started by `paddle.distributed.launch` for `--devices N`."""
import sys

from kunlun_train.cli import main

sys.exit(main())
