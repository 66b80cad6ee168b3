"""cart: each user's cart in Redis with a TTL, priced from the catalog when shown."""
