"""catalog: products, sellers and prices (PostgreSQL schema `catalog`); stock is joined in from inventory."""
