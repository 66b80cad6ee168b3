"""inventory: stock and reservations, strongly consistent in PostgreSQL (schema `inventory`)."""
