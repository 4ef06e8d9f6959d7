"""``python -m infoclust.book``: execute the chapters and render the site (see :mod:`infoclust.book.build`)."""
from .build import main

raise SystemExit(main())
