"""``python -m bench``: the bars B1-B9 of the performance spec, each next to its baseline.

``--quick`` for a smaller run (under a minute), ``--json FILE`` to keep the
figures; ``make bench`` installs the ``bench`` extra first. The folder has
no ``__init__.py`` on purpose: it is not part of the installed package
(every root folder with one is an ``idstitch`` subpackage). See
``docs/performance.md``.
"""

from bench._cli import main

raise SystemExit(main())
