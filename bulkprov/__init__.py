"""bulkprov."""
