"""bulkprov's benchmarks: the onboarding race, overhead, scale and soak (see README.md)."""
