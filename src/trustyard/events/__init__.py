"""Domain events (L1): the typed events (model.py), the outbox writers publish to in the
transaction of their change (outbox.py, SQL in stores.py), the dispatcher and pruning jobs
(jobs.py), and pull events buffered per process (pulls.py). Nothing is built at import time."""
