"""Everything that reads: settings, engine, schema, metric formulas and read functions."""
