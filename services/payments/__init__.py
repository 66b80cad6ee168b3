"""payments: payment intents, their idempotency, the provider calls and the ledger (PostgreSQL schema `payments`)."""
