"""Webhooks: subscriptions to domain events, delivered over HTTP(S) in order, signed, retried
with backoff through the job queue, with a delivery history."""
