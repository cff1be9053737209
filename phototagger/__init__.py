"""phototagger: tag a photo library with the landmarks its pictures show."""

import logging

__version__ = "0.1.0"

# A library stays quiet unless its user configures logging (the CLI's --log does).
logging.getLogger(__name__).addHandler(logging.NullHandler())
