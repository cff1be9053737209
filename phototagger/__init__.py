"""phototagger: tag a photo library with the landmarks its pictures show."""

__version__ = "0.1.0"
