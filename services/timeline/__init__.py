"""timeline: materialized home timelines (Redis), author indexes, celebrity merge."""
