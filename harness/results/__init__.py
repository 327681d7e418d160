"""Results: the one schema, intervals, tables and the report written from result files alone."""
