"""``bulkprov run`` as a user types it, plus one line saying how much CPU the run itself took
(imports excluded), so that every contender's CPU is counted the same way."""

from __future__ import annotations

import json
import sys
import time

# the CLI imports these lazily: imported here, they stay out of the run's CPU as before
import bulkprov.commands.run
import bulkprov.mockgraph.server  # noqa: F401
from bulkprov.cli import main

if __name__ == "__main__":
    cpu_file, argv = sys.argv[1], sys.argv[2:]
    cpu0 = time.process_time()
    try:
        code = main(argv)
    finally:
        with open(cpu_file, "w") as f:
            json.dump({"work_cpu": time.process_time() - cpu0}, f)
    sys.exit(code)
