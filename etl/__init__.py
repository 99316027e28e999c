"""Everything that writes: source adapters, validation, loading, scheduler, demo data."""
