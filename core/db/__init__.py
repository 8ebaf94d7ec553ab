"""Database layer shared by the API and the workers: engine, sessions, typed ORM models."""
