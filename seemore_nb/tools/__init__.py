"Commands around the project: the benchmarks and the documentation site."
