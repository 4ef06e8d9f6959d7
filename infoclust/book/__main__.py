"""``python -m infoclust.book``: execute the chapters, render the site (:mod:`infoclust.book.build`)."""

from .build import main

raise SystemExit(main())
