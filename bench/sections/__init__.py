"""The benchmark's sections, one module each; each section function takes the run's ``Context`` and adds its
tables (and summary lines) to it."""
