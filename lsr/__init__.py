"""lsr: learned sparse retrieval — encode, index, serve and evaluate.

Layout: ``lsr.retrieval`` (encoders, searching), ``lsr.indexer`` (corpus → index folder, engines),
``lsr.api`` (HTTP), ``lsr.eval`` (metrics and reports); ``lsr.datasets`` reads corpora, ``lsr.cli`` wires it all.
"""

__version__ = "0.1.0"
