"""nieuws-QA's scale benchmark; tooling, not part of the installed `qa` package.

    python benchmarks/bench.py --data data [--quick] [--json] [--sizes 10k,100k,1M] [--workdir DIR]

bench.py is the driver; synthetic.py makes the synthetic corpora and vectors, phases.py the
measurements (each run in a fresh process), measure.py the timing and memory helpers, report.py
the tables. Results and method: BENCHMARKS.md.
"""
