"""The web process: the Dash app factory, its pages and components (read-only)."""
