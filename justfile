# Recipes for working on tandem. Each is also a plain command, so `just` is optional.

# Run every test against a throwaway PostgreSQL started by the tests themselves.
test:
    scripts/dev test

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The demo: a throwaway PostgreSQL, the example migrations, old and new versions side by side.
demo:
    scripts/dev demo

# What CI runs.
ci:
    .ci/run

# Benchmarks: backfill throughput vs one UPDATE, in one run (release build); then the
# application's stall behind a blocked DDL step, fixed 500 ms lock timeout vs the adaptive default.
bench:
    cargo bench -p tandem-pg --bench backfill
    cargo bench -p tandem-pg --bench lockstall
