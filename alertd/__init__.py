"""alertd: alert e-mail to deduplicated, asset-linked tickets."""

__version__ = "0.1.0"
