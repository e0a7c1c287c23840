"""One data-parallel worker, as started by `paddle.distributed.launch` for `--devices N`."""
import os
import sys

from kunlun_train.cli import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)   # as kunlun_train/__main__.py: no slow teardown after the work is saved
