"""GenMix science code: data, generators, the GenMix mixer, classifiers, metrics.

Nothing in this package imports web or queue code; the CLI and the workers call into it.
"""
