"""Builders of the composition root (L4): what `app.py` (the HTTP server), `background.py`
(the job workers) and the CLI build from settings. They import downward only and never
`app` or `background`, so the roots form no import cycle. Nothing runs at import time."""
