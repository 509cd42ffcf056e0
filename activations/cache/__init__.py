"""The HDF5 activation cache: write (resumable, multi-rank), read (sequential, shuffled,
filtered, paired). See `format` for the layout on disk."""

from activations.cache.format import CacheError
from activations.cache.paired import PairedCache, open_paired
from activations.cache.reader import ActivationCache, open_cache
from activations.cache.writer import CacheWriteConfig, write_cache

__all__ = ["CacheError", "ActivationCache", "PairedCache", "open_cache", "open_paired", "CacheWriteConfig",
           "write_cache"]
