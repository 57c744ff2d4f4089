"""The ``layermap`` command line: every command's argument parsing and printing, and nothing else.

Each module registers its subcommands (``main`` the top-level parser and the small commands,
``evolution`` evolve/show/export, ``compare`` compare/plot, ``bench`` the studies, ``validate``) and a
command function only parses, calls one library function and prints its result.  May import every
other part of ``layermap``; nothing imports it except ``layermap.__main__``.
"""
