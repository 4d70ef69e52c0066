"""The composition root (L4): every service built once per process from the settings.
server.py builds a server process's services (`build_services`), jobs.py a worker's
(`make_worker`); accounts.py, scanning.py, events.py and common.py hold the builders both
use. `app.py` assembles the ASGI app around `build_services`, cli/ commands build through
here; nothing here imports `app` or `cli`, so the roots form no import cycle. Nothing runs at
import time."""
