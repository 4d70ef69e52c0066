"""Background jobs: a queue table in the metadata database, workers that claim jobs atomically
under a renewed lease, retries with backoff, dead jobs, and cron schedules that fire once per
period cluster-wide. Imports db/ and config only; the composition root registers handlers.
"""
