"""HTTP layer: dependencies and thin routers."""
