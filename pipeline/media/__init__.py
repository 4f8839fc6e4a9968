"""Files in and out: images (Pillow, OpenCV), video (PyAV: probe, read, write, check), tar
shards, and ``atomic.py`` (every file written under a temporary name and renamed into place).
No torch here: pixels are numpy arrays, and every failure is a ``MediaError`` naming the file.

May import: ``errors`` only (and ``hashing``, ``typed_yaml``); never ops or anything above.
"""
