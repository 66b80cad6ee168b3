"""identity: accounts, credentials, profiles and access tokens (PostgreSQL schema `identity`)."""
