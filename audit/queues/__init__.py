"""Audit job queues behind one interface (``base.JobQueue``): a Redis Stream with a consumer
group for production, an in-process queue for the embedded default."""
