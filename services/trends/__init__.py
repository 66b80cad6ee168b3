"""trends: top hashtags over a sliding, decaying window, counted from post events in Redis."""
