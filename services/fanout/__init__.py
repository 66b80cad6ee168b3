"""fanout: the worker that turns post and graph events into timeline writes."""
