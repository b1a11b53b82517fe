"""``.mlpackage`` directories: files, sizes and digests (``files``); the ML program inside
them, walked and decompressed (``program``)."""
