"""Edge policy that Envoy calls: per-user rate limiting shared across Envoy replicas."""
