"""Real processes and stand-ins for the tests, the demo and the benchmarks; production code
never imports this package."""
