"""The programs a benchmark runs as client processes: bulkprov itself is run by its CLI."""
